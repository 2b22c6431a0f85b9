"""advbench: a benchmark suite and leaderboard harness for advanced machine-learning techniques."""

__version__ = "0.1.0"
