"""The registry: entry points, lazy loading, shadowing refused, names with suggestions."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from types import SimpleNamespace

import pytest

from advbench import registry as registry_module
from advbench.errors import UsageError
from advbench.registry import METHOD_GROUP, TASK_GROUP, Registry


def fake_entry_points(monkeypatch, extra: dict[str, list[tuple[str, str, str]]]):
    """Installed entry points plus (name, value, distribution) triples per group."""
    real = registry_module.entry_points

    def patched(group: str):
        eps = list(real(group=group))
        for name, value, dist in extra.get(group, []):
            eps.append(EntryPoint(name, value, group)._for(SimpleNamespace(name=dist)))
        return eps

    monkeypatch.setattr(registry_module, "entry_points", patched)


def test_builtin_tasks_and_methods_come_from_entry_points():
    reg = Registry()
    assert {"transformer", "pc", "qnn"} <= set(reg.task_names())
    for task in ("transformer", "pc", "qnn"):
        methods = reg.methods(task)
        assert {"reference", "floor"} <= set(methods)
        assert all(m.builtin and m.source == "advbench" for m in methods.values())
    assert reg.refused == []


def test_listing_imports_no_method_module():
    code = ("from advbench.registry import Registry; import sys\n"
            "r = Registry(); [r.spec(t) for t in r.task_names()]; [r.methods(t) for t in r.task_names()]\n"
            "print(sorted(m for m in sys.modules if m.startswith('advbench.baselines.') or m in ('torch', 'qiskit')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_method_is_added(monkeypatch):
    fake_entry_points(monkeypatch, {METHOD_GROUP: [("pc:my-method", "somewhere:fn", "my-plugin")]})
    reg = Registry()
    entry = reg.method("pc", "my-method")
    assert entry.source == "my-plugin" and not entry.builtin and entry.id == "pc:my-method"


def test_plugin_shadowing_a_builtin_method_is_refused(monkeypatch):
    fake_entry_points(monkeypatch, {METHOD_GROUP: [("transformer:reference", "evil:fn", "evil-plugin")]})
    reg = Registry()
    assert reg.method("transformer", "reference").target == "advbench.baselines.transformer:train"
    assert any("refused method 'transformer:reference' from package 'evil-plugin': it is built into advbench" in r
               for r in reg.refused)


def test_plugin_shadowing_a_builtin_task_is_refused(monkeypatch):
    fake_entry_points(monkeypatch, {TASK_GROUP: [("pc", "evil:SPEC", "evil-plugin")]})
    reg = Registry()
    assert reg.source("pc") == "advbench" and reg.spec("pc").entry_point.startswith("advbench.tasks.pc")
    assert any("refused task 'pc'" in r for r in reg.refused)


def test_two_plugins_with_one_name_keep_the_first_and_say_so(monkeypatch):
    fake_entry_points(monkeypatch, {METHOD_GROUP: [("pc:x", "a:fn", "plugin-a"), ("pc:x", "b:fn", "plugin-b")]})
    reg = Registry()
    assert reg.method("pc", "x").source == "plugin-a"
    assert any("package 'plugin-a' registered it first" in r for r in reg.refused)


def test_malformed_method_name_is_refused(monkeypatch):
    fake_entry_points(monkeypatch, {METHOD_GROUP: [("no-task-part", "a:fn", "plugin-a")]})
    assert any("not 'task:method'" in r for r in Registry().refused)


def test_unknown_names_suggest_the_nearest():
    reg = Registry()
    with pytest.raises(UsageError, match=r"unknown task 'transfromer'; did you mean 'transformer'\? Valid tasks: "):
        reg.spec("transfromer")
    with pytest.raises(UsageError, match=r"unknown method 'flor' for task 'pc'; did you mean 'floor'\?"):
        reg.method("pc", "flor")
    assert reg.spec("transformer-v1") is reg.spec("transformer")


def test_in_process_registration_refuses_duplicates(toy_registry):
    with pytest.raises(UsageError, match="already registered"):
        toy_registry.register_method("toy", "estimate", "x:y")


def test_a_task_that_cannot_be_loaded_is_a_clear_usage_error(monkeypatch):
    fake_entry_points(monkeypatch, {TASK_GROUP: [("broken", "advbench_no_such_task_module:SPEC", "broken-plugin")]})
    reg = Registry()
    with pytest.raises(UsageError, match=r"task 'broken' \(registered by package 'broken-plugin'\) cannot be loaded"):
        reg.spec("broken")


def test_a_target_is_met_up_to_rounding_and_not_a_hair_further():
    from advbench.spec import Metric, Target

    bwt = Metric("bwt", "accuracy", True, "backward transfer")
    bar = Target("bwt", -0.3, "full", "permuted")
    # ((0.3 - 0.3) - 0.3 + (0.8 - 0.3) - 0.8) / 2: -0.3 exactly, -0.30000000000000004 in floats
    assert ((0.3 - 0.3) - 0.3 + (0.8 - 0.3) - 0.8) / 2 == -0.30000000000000004
    assert bar.met(-0.30000000000000004, bwt)
    assert bar.met(-0.3, bwt) and bar.met(-0.2999, bwt)
    assert not bar.met(-0.3001, bwt) and not bar.met(-0.3 - 1e-9, bwt) and not bar.met(float("nan"), bwt)
    mse = Metric("mse", "loss", False, "")
    assert Target("mse", 0.6, "full", "k10").met(0.6000000000000001, mse)
    assert not Target("mse", 0.6, "full", "k10").met(0.6000001, mse)
