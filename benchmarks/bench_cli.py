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
