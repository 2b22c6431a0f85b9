"""asv benchmark suite: one generated module per task (see advbench/asv_suite.py)."""
