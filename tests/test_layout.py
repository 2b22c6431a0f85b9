"""The task layout: spec, public contract and held-out code apart, checked by import-linter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from advbench.registry import Registry

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """advbench and the example plugin installed as a user gets them (not editable), in a folder.

    import-linter reads packages from the file system, and the editable install maps tasks/ and
    baselines/ into advbench only at import time, so the contracts are checked on a real install.
    """
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT), str(ROOT / "examples" / "advbench-example-plugin")],
                   check=True, capture_output=True, timeout=600)
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    return target


def with_example_plugin(cwd: Path) -> Path:
    """advbench's import contracts with the example plugin added as a root package and as a method
    source: what a plugin is held to (the repository's own config checks advbench alone, so that
    `lint-imports` passes in an environment without the plugin)."""
    text = (ROOT / "pyproject.toml").read_text()
    text = text.replace('root_packages = ["advbench"]', 'root_packages = ["advbench", "advbench_example_plugin"]')
    text = text.replace('source_modules = ["advbench.baselines"]',
                        'source_modules = ["advbench.baselines", "advbench_example_plugin"]')
    path = cwd / "importlinter-with-plugin.toml"
    path.write_text(text)
    return path


def lint_imports(site: Path, cwd: Path) -> subprocess.CompletedProcess:
    # -S: no .pth files, so the editable install's finder does not shadow the installed copy; run
    # outside the repository, whose advbench/ folder would shadow it too.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]]))
    config = with_example_plugin(cwd)
    code = ("import sys; from importlinter.cli import lint_imports_command; "
            f"sys.argv = ['lint-imports', '--no-cache', {str(config)!r}]; sys.exit(lint_imports_command())")
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_are_kept(installed, tmp_path):
    res = lint_imports(installed, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout and "Methods import task contracts, never held-out code KEPT" in res.stdout


def test_a_baseline_importing_held_out_code_breaks_the_build(installed, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    baseline = site / "advbench" / "baselines" / "pc.py"
    baseline.write_text(baseline.read_text() + "\nfrom advbench.tasks.pc.heldout import PCTask  # noqa\n")
    res = lint_imports(site, tmp_path)
    assert res.returncode == 1 and "BROKEN" in res.stdout
    assert "advbench.baselines.pc -> advbench.tasks.pc.heldout" in res.stdout


def test_the_harness_contract_covers_every_harness_module():
    """"The harness names no task and no baseline" lists its source modules (import-linter takes no
    wildcard that would leave advbench.tasks and advbench.baselines out): every module of advbench/
    is on that list, so a new one is covered the day it lands."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in config if c["name"].startswith("The harness names no task")]
    modules = {f"advbench.{p.stem}" for p in (ROOT / "advbench").glob("*.py") if p.stem != "__init__"}
    assert modules == set(contract["source_modules"]), modules ^ set(contract["source_modules"])


def test_every_task_is_a_spec_a_contract_and_held_out_code():
    reg = Registry()
    for name in reg.task_names():
        spec = reg.spec(name)
        package = name.replace("-", "_")  # dp-fedavg lives in tasks/dp_fedavg
        folder = ROOT / "tasks" / package
        assert (folder / "__init__.py").exists() and (folder / "contract.py").exists(), name
        assert (folder / "heldout.py").exists(), name
        assert spec.entry_point.startswith(f"advbench.tasks.{package}.heldout:"), spec.entry_point


def test_every_built_in_method_has_committed_full_budget_records():
    """results/ is the reference leaderboard: full-budget runs of every built-in method, each task's
    current version, on every variant of its full budget."""
    from committed import committed

    reg = Registry()
    missing = []
    for name in reg.task_names():
        spec = reg.spec(name)
        for method, entry in reg.methods(name).items():
            if entry.source != "advbench":
                continue  # a plugin installed here
            ran = {r["variant"] for r in committed(spec, method=method, ok_only=False)}
            missing += [f"{spec.id} {method} {v}" for v in spec.budgets["full"].variants if v not in ran]
    assert not missing, "no committed full-budget record: " + ", ".join(missing)


def test_every_committed_record_ran_under_its_tasks_current_budget():
    """A budget changed without a new task version drops the records made before from the boards
    (records.BudgetCheck): the reference leaderboard must not lose any that way."""
    import json

    from advbench.records import BudgetCheck

    check = BudgetCheck(Registry())
    files = sorted((Path(__file__).resolve().parents[1] / "results" / "runs").rglob("*.json"))
    stale = [f"{f.name}: {why}" for f in files if (why := check.why(json.loads(f.read_text()))) is not None]
    assert len(files) > 1000 and not stale, stale[:5]


def test_reading_every_spec_imports_no_numpy():
    code = ("import sys; from advbench.registry import Registry; r = Registry()\n"
            "[r.spec(t) for t in r.task_names()]\n"
            "print(sorted(m for m in ('numpy', 'torch', 'pandas', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_method_processes_refuse_held_out_modules():
    from advbench.sandbox import HeldoutImportBlocker

    blocker = HeldoutImportBlocker({"toy.heldout"})
    modules = ("advbench.tasks.pc.heldout", "toy.heldout")
    saved = {m: sys.modules.pop(m) for m in modules if m in sys.modules}
    sys.meta_path.insert(0, blocker)
    try:
        for module in modules:
            with pytest.raises(ImportError, match="held-out code"):
                __import__(module)
        import advbench.tasks.pc.contract  # noqa: F401 - contracts stay importable
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(saved)



def test_the_contracts_can_be_checked_by_hand(tmp_path):
    """`.ci/lint-imports`, the README's way to run import-linter by hand from the editable install
    (plain `lint-imports` cannot see advbench.baselines there): it passes on this checkout and
    leaves nothing in the temporary folder (it once exec'd the check, so its clean-up never ran)."""
    res = subprocess.run([str(ROOT / ".ci" / "lint-imports")],
                         env=dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path)),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 4 kept, 0 broken." in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_locked_test_environment_covers_every_extra_and_is_what_is_installed():
    """``constraints.txt`` (made by ``scripts/lock-test-env``: pip's resolution, frozen) is what
    the README's commands install, with uv. Every requirement of the ``test`` extra, advbench's own
    extras expanded, is pinned there at a version its specifier allows (an added or raised
    requirement fails here until the file is re-made), and every pinned package is installed here
    at its pinned version (the tests ran on the locked set)."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not a pin: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    todo, seen, unpinned = ["test"], set(), []
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name == "advbench":
                todo += sorted(req.extras)
            elif name == "torch":  # installed first and on its own (the README says why): not in the file
                assert req.specifier.contains(metadata.version("torch").split("+")[0]), text
            elif name not in pins or not req.specifier.contains(pins[name], prereleases=True):
                unpinned.append(f"{text} (pinned: {pins.get(name)})")
    assert seen >= {"test", "tasks", "all", "ray", "mlflow"} and len(pins) > 150
    assert not unpinned, f"re-make constraints.txt with scripts/lock-test-env: {unpinned}"
    installed = {}
    for name in pins:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed[name] = None
    wrong = {n: (pins[n], installed[n]) for n in pins if installed[n] != pins[n]}
    assert not wrong, ("installed versions are not the locked ones (pinned, installed); install with the "
                       f"README's test command: {wrong}")


def test_the_libraries_a_method_process_loads_before_the_clock_are_the_tasks_dependencies():
    """A method's module is imported on the training clock; the libraries it imports are loaded before
    it (``advbench.sandbox.PRELOADED_LIBRARIES``, by import name): every library of pyproject's
    `tasks` extra, and nothing else but advbench and pettingzoo (mpe2's environments)."""
    import importlib.metadata as md
    import re
    import tomllib
    from collections import defaultdict

    from advbench.sandbox import PRELOADED_LIBRARIES

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def dists(extra: str) -> set[str]:
        out: set[str] = set()
        for req in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+(\[[^\]]*\])?", req)
            assert name, req
            if name.group(0).startswith("advbench["):
                for sub in name.group(1).strip("[]").split(","):
                    out |= dists(sub.strip())
            else:
                out.add(re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", req).group(0)).lower())
        return out

    imports_of: dict[str, set[str]] = defaultdict(set)
    for module, names in md.packages_distributions().items():
        for name in names:
            imports_of[re.sub(r"[-_.]+", "-", name).lower()].add(module)
    covered: set[str] = set()
    for dist in sorted(dists("tasks")):
        found = imports_of[dist] & PRELOADED_LIBRARIES
        assert found, f"{dist} (pyproject's tasks extra) has no import name in PRELOADED_LIBRARIES"
        covered |= found
    assert PRELOADED_LIBRARIES - covered <= {"advbench", "numpy", "pettingzoo"}, PRELOADED_LIBRARIES - covered
