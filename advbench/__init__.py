"""advbench: a benchmark suite and leaderboard harness for advanced machine-learning techniques.

``advbench.load_records(path, **filters)`` and ``advbench.leaderboard_frame(path, **filters)`` give
the run records and the leaderboard as pandas DataFrames (:mod:`advbench.export`); they are
imported on first use (PEP 562), so ``import advbench`` and the CLI's start-up load no pandas.
"""

import os as _os

__version__ = "0.1.0"

# torch runs every installed distribution's "torch.backends" entry point when it is imported (its
# out-of-tree device backends): any package could run code in the harness that way, beside the key
# and the held-out data. advbench uses no such backend; processes it starts inherit the setting.
_os.environ["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"

_LAZY = {"load_records": "advbench.export", "leaderboard_frame": "advbench.export"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
