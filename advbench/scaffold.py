"""``advbench new-method TASK NAME``: an installable plugin with one method and its test.

The plugin is a folder of plain text (no template engine): ``pyproject.toml`` registering
``"TASK:NAME"`` under the ``advbench.methods`` entry-point group, a package with the method (a
callable ``method(train, ctx) -> solution`` that imports the task's contract and nothing else of
advbench), and a test that runs it on the task's quick budget through the harness, in its jail.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from advbench.errors import UsageError

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{name}: a method for advbench's {task} task"
requires-python = ">=3.10"
dependencies = ["advbench"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The whole registration: "<task>:<method>" = "<module>:<callable>". advbench finds it at run time,
# without importing it; the method runs in advbench's jail (uid 65534, a read-only view).
[project.entry-points."advbench.methods"]
"{task}:{name}" = "{package}.method:train"

[tool.setuptools.packages.find]
where = ["src"]
'''

METHOD = '''"""{name}: a method for advbench's ``{task}`` task.

A method is a callable ``train(data, ctx) -> solution``. ``data`` is the task's training view and
the solution is what the task scores; both types are in ``{contract}`` (read it: it is the whole
contract). A plugin may import that contract and its own code, never ``advbench.baselines`` or a
task's held-out code (the jail refuses both). See advbench's docs/plugins.md for every ``ctx`` call.
"""

from __future__ import annotations

from typing import Any

import {contract} as contract  # noqa: F401 - the task's data and solution types


def train(data: Any, ctx: Any) -> Any:
    """Replace this body with your method. It must hand a solution to ``ctx.checkpoint`` (scored
    on held-out data once the method has ended, at the training time it was handed in) or return one."""
    ctx.record_config(note="scaffold: replace me")  # hyperparameters as actually used, in the record
    raise NotImplementedError("{task}:{name} is a scaffold: write the method in {package}/method.py")
'''

TEST = '''"""{name} runs through advbench's harness, in its jail, on the quick budget of {task}."""

from advbench.runner import run


def test_{package}_runs_on_the_quick_budget(tmp_path):
    rec = run("{task}", "{name}", budget="quick", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"][rec["primary_metric"]] is not None
'''

README = '''# {dist}

`{name}`, a method for advbench's `{task}` task.

```bash
pip install -e '.[test]'   # then advbench list shows {task}:{name}
pytest                     # runs it on the quick budget, in advbench's jail
advbench run --task {task} --method {name} --method reference --seeds 3 --results my-results
advbench gate --baseline my-results --candidate my-results --baseline-method reference --method {name}
```

Install it as a wheel (`pip install .`) on a machine that runs sealed boards: an editable install
runs code at interpreter start-up, and a sealed run refuses to start beside it.
'''


def new_method(task: str, contract_module: str, name: str, where: Path) -> Path:
    """Write the plugin folder for method ``name`` of ``task`` under ``where``; its path."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise UsageError(f"method name {name!r} must be lower case letters, digits and '-', starting with a letter")
    package = "advbench_" + re.sub(r"[^a-z0-9]", "_", f"{task}_{name}")
    if keyword.iskeyword(package) or not package.isidentifier():
        raise UsageError(f"method name {name!r} does not make a Python package name")
    dist = package.replace("_", "-")
    root = Path(where) / dist
    if root.exists():
        raise UsageError(f"{root} exists already: pick another --dir or remove it")
    values = dict(task=task, name=name, package=package, dist=dist, contract=contract_module)
    files = {root / "pyproject.toml": PYPROJECT, root / "README.md": README,
             root / "src" / package / "__init__.py": '"""{name}: a method for advbench\'s {task} task."""\n',
             root / "src" / package / "method.py": METHOD, root / "tests" / f"test_{package}.py": TEST}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(**values))
    return root
