"""asv benchmarks of the command line's start-up (written by hand; the task modules are generated).

`advbench list` and `--help` must stay light: no numpy, pandas or torch. Each `timeraw_*` runs its
code in a fresh interpreter, so the figures compare directly with `python -c pass`.
"""

_RUN = "import sys\nsys.argv = ['advbench', {!r}]\nfrom advbench.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass\n"


class CommandLineStartup:
    timeout = 120
    repeat = (5, 20, 30.0)

    def timeraw_python_baseline(self):
        return "pass"

    def timeraw_list(self):
        return _RUN.format("list")

    def timeraw_help(self):
        return _RUN.format("--help")


class LeaderboardSite:
    """`advbench leaderboard --format html` over 1000 records (goal: under 5 s).

    The records are the committed reference records, copied under fresh seeds until there are
    1000, so pages, boards, curves and images are those of the real board, only more of them.
    """

    timeout = 300
    number = 1
    repeat = (3, 5, 60.0)

    def setup_cache(self):
        import json
        import tempfile
        from pathlib import Path

        from advbench import records

        src = Path(__file__).resolve().parents[1] / "results"
        root = Path(tempfile.mkdtemp(prefix="advbench-site-bench-"))
        base = [r for r in records.iter_records(src) if not r.get("artifacts")]
        n = 0
        while n < 1000:
            for rec in base:
                if n >= 1000:
                    break
                rec = {k: v for k, v in rec.items() if not k.startswith("_")}
                rec["seed"] = 1000 + n
                rec["run_id"] = f"{n:012x}"
                folder = root / "runs" / rec["task_id"] / rec["method"]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{rec['variant']}__seed{rec['seed']}.json").write_text(json.dumps(rec))
                n += 1
        return str(root)

    def time_html_1000_records(self, root):
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "advbench.cli", "leaderboard", "--format", "html", "--results", root,
                        "--out", root + "/site"], check=True, capture_output=True)
