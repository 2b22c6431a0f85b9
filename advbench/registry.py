"""Tasks and methods, found through Python entry points and resolved lazily.

Two entry-point groups, the way pytest finds plugins (``pytest11``) and lm-evaluation-harness finds
tasks:

* ``advbench.tasks``: ``<task> = <module>:<TaskSpec object>``
* ``advbench.methods``: ``"<task>:<method>" = <module>:<callable>``

advbench registers its own tasks and baselines in its ``pyproject.toml`` exactly so; a third-party
package does the same in its own. Listing reads entry-point *names* (and task specs, which import
nothing heavy); a method's module is imported only when the method runs.

A plugin may add tasks and methods but never replace a built-in one: an entry point whose name
is already registered by advbench itself is refused, and the refusal is reported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from advbench.errors import UsageError, unknown
from advbench.spec import TaskSpec

TASK_GROUP = "advbench.tasks"
METHOD_GROUP = "advbench.methods"
BUILTIN_DIST = "advbench"


@dataclass(frozen=True)
class MethodEntry:
    """A method known by name; ``load()`` imports it."""

    task: str
    name: str
    target: str  # "module:attr"
    source: str  # distribution that registered it ("advbench" for built-ins)

    @property
    def id(self) -> str:
        return f"{self.task}:{self.name}"

    @property
    def builtin(self) -> bool:
        return self.source == BUILTIN_DIST

    def load(self) -> Callable[..., Any]:
        return load_object(self.target)


def module_specs(module: str) -> list[Any] | None:
    """The import system's spec of ``module`` and of each package on the way to it, found the way
    an import finds them (``find_spec`` of each finder on ``sys.meta_path``) but without running
    anything: importing ``pkg.mod`` runs ``pkg/__init__.py``. A module already imported gives its
    own ``__spec__``. None where one cannot be found."""
    import sys

    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    specs: list[Any] = []
    path = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        for finder in sys.meta_path if spec is None else ():
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, path)
            except (ImportError, ValueError, TypeError, AttributeError):
                spec = None
            if spec is not None:
                break
        if spec is None:
            return None
        specs.append(spec)
        path = spec.submodule_search_locations
        if i < len(parts) - 1 and path is None:
            return None
    return specs


def load_object(target: str) -> Any:
    """Resolve ``"package.module:attr.sub"`` (gymnasium's ``load_env_creator`` in spirit)."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _dist_name(ep: EntryPoint) -> str:
    name = getattr(getattr(ep, "dist", None), "name", None)
    return (name or "unknown").lower().replace("_", "-")


def _dedupe(eps: list[EntryPoint], kind: str) -> tuple[dict[str, tuple[EntryPoint, str]], list[str]]:
    """Keep one entry point per name: a built-in wins and shadowing plugins are refused."""
    chosen: dict[str, tuple[EntryPoint, str]] = {}
    refused: list[str] = []
    # Built-ins first, so that whatever the install order a plugin never takes a built-in name.
    for ep in sorted(eps, key=lambda e: _dist_name(e) != BUILTIN_DIST):
        source = _dist_name(ep)
        if ep.name in chosen:
            kept = chosen[ep.name][1]
            if kept == source and chosen[ep.name][0].value == ep.value:
                continue  # the same distribution seen twice on sys.path
            why = "it is built into advbench" if kept == BUILTIN_DIST else f"package {kept!r} registered it first"
            refused.append(f"refused {kind} {ep.name!r} from package {source!r}: {why}")
            continue
        chosen[ep.name] = (ep, source)
    return chosen, refused


class Registry:
    """The tasks and methods installed in this environment (plus any registered in-process)."""

    def __init__(self) -> None:
        tasks, refused_t = _dedupe(list(entry_points(group=TASK_GROUP)), "task")
        methods, refused_m = _dedupe(list(entry_points(group=METHOD_GROUP)), "method")
        self.refused: list[str] = refused_t + refused_m
        self._task_eps = {name: ep for name, (ep, _) in tasks.items()}
        self._task_sources = {name: src for name, (_, src) in tasks.items()}
        self._specs: dict[str, TaskSpec] = {}
        self._methods: dict[str, dict[str, MethodEntry]] = {}
        for name, (ep, source) in methods.items():
            task, sep, method = name.partition(":")
            if not sep or not task or not method:
                self.refused.append(f"refused method {name!r} from package {source!r}: name is not 'task:method'")
                continue
            self._methods.setdefault(task, {})[method] = MethodEntry(task, method, ep.value, source)

    # ---- in-process registration (tests, notebooks), same rules as entry points ----
    def register_task(self, spec: TaskSpec) -> None:
        if spec.name in self.task_names():
            raise UsageError(f"task {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        self._task_sources[spec.name] = "<in-process>"

    def register_method(self, task: str, name: str, target: str, source: str = "<in-process>") -> None:
        existing = self._methods.get(task, {}).get(name)
        if existing is not None:
            raise UsageError(f"method {task}:{name} is already registered by {existing.source!r}")
        self._methods.setdefault(task, {})[name] = MethodEntry(task, name, target, source)

    # ---- lookups ----
    def task_names(self) -> list[str]:
        return sorted(set(self._task_eps) | set(self._specs))

    def spec(self, name: str) -> TaskSpec:
        """The spec for ``name`` or ``name-vN`` (the version must be the installed one)."""
        base, version = _split_version(name)
        if base not in self.task_names():
            raise unknown("task", name, self.task_names())
        if base not in self._specs:
            try:
                spec = self._task_eps[base].load()
            except Exception as exc:  # a broken plugin (or a half-installed task): say which, briefly
                raise UsageError(f"task {base!r} (registered by package {self._task_sources.get(base, '?')!r}) "
                                 f"cannot be loaded: {exc.__class__.__name__}: {exc}") from exc
            if not isinstance(spec, TaskSpec):
                raise UsageError(f"entry point for task {base!r} does not point at a TaskSpec")
            self._specs[base] = spec
        spec = self._specs[base]
        if version is not None and version != spec.version:
            raise UsageError(f"task {base!r} is installed at version v{spec.version}, not v{version}. Valid ids: {spec.id}")
        return spec

    def methods(self, task: str) -> dict[str, MethodEntry]:
        base, _ = _split_version(task)
        return dict(sorted(self._methods.get(base, {}).items()))

    def method(self, task: str, name: str) -> MethodEntry:
        spec = self.spec(task)
        methods = self.methods(spec.name)
        if name not in methods:
            raise unknown("method", name, methods, where=f" for task {spec.name!r}")
        return methods[name]

    def source(self, task: str) -> str:
        return self._task_sources.get(_split_version(task)[0], "unknown")


def _split_version(name: str) -> tuple[str, int | None]:
    base, sep, tail = name.rpartition("-v")
    if sep and tail.isdigit():
        return base, int(tail)
    return name, None


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    return Registry()
