"""Hardware profiles: where a run executes, whether that is possible here, and what gets recorded.

``available()`` must stay cheap and must not import torch or qiskit (``advbench list`` calls it);
``activate()`` does the real work once a run is about to start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from advbench.errors import UsageError, unknown


def _cpuinfo(field: str) -> str | None:
    """The first ``field : value`` of /proc/cpuinfo (the first core's), or None where there is none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    # Not Linux: fall back to what platform knows.
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def vector_isa() -> str:
    """The widest x86 vector instruction set this CPU offers (``avx512``, ``avx2``, ``avx``, ``sse4_2``),
    else the machine name. torch's and MKL's kernels pick their code path by it, and float32 sums
    round differently from one path to another: a chaotic training (SimCLR, a trained attack floor)
    ends in other numbers, and a record says which path made its own."""
    flags = set((_cpuinfo("flags") or "").split())
    return next((isa for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4_2"))
                 if flag in flags), platform.machine())


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads one run may use: ``ADVBENCH_THREADS``, else 1.

    One thread is the default because small models gain little from a second one and lose a lot
    when threads outnumber free cores: gnn's quick budget took 90 s at 2 threads with the other
    core busy, 7.7 s at 1 thread, with the same metrics. Runs side by side (``--jobs``) never
    oversubscribe at 1 thread each; a lone run on an idle machine may ask for more.
    """
    env = os.environ.get("ADVBENCH_THREADS")
    if env is None or env == "":
        return 1
    return parse_threads(env, "ADVBENCH_THREADS")


def parse_threads(text: str, where: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"{where}={text!r} is not a thread count. Valid values: integers 1 to {4 * available_cores()}")
    return n


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """Environment that fixes BLAS/OpenMP threads of a process before any library loads."""
    return {name: str(threads) for name in THREAD_ENV}


@contextlib.contextmanager
def harness_threads(threads: int):
    """The harness process's own work for a run (building the task, scoring each checkpoint in the
    task's ``evaluate``) on the run's thread count, as its jailed processes are: the BLAS and OpenMP
    pools already loaded are limited (threadpoolctl), and the environment tells the ones loaded later.
    Left alone, numpy's OpenBLAS takes every core: beside another run on this 2-core machine,
    simclr's probes of one checkpoint took 2.5 s of scoring instead of 0.3 s. Restored afterwards."""
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update(thread_env(threads))
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    kind: str  # "torch" or "quantum"
    torch_device: str = "cpu"
    simulator: Mapping[str, Any] = field(default_factory=dict)  # for quantum profiles

    # ---- cheap checks (no heavy imports) ----
    def available(self) -> tuple[bool, str]:
        if self.kind == "quantum":
            if importlib.util.find_spec("qiskit_aer") is None:
                return False, "qiskit-aer is not installed (pip install 'advbench[quantum]')"
            return True, "qiskit-aer installed"
        if self.torch_device == "cpu":
            return True, "ok"  # tasks without torch (pc) run here too; torch is seeded when installed
        if importlib.util.find_spec("torch") is None:
            return False, "torch is not installed"
        if self.torch_device == "cuda":
            if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
                return False, "no NVIDIA driver on this machine"
        return True, "ok"

    # ---- the real thing, at run time ----
    def activate(self, seed: int, threads: int | None = None, *, import_torch: bool = True) -> dict[str, Any]:
        """Seed and configure the libraries this profile uses; return what to record about it.

        ``import_torch=False`` (the method's process) seeds torch only if the method's module or
        its data already imported it, so a method without torch does not pay for its import.
        """
        ok, why = self.available()
        if not ok:
            raise UsageError(f"profile {self.name!r} is not available here: {why}")
        threads = default_threads() if threads is None else threads
        info: dict[str, Any] = {"profile": self.name, "cpu": cpu_model(), "vector_isa": vector_isa(),
                                "cores": os.cpu_count(), "threads": threads,
                                "machine": platform.machine(), "system": platform.system()}
        if ("torch" in sys.modules) if not import_torch else importlib.util.find_spec("torch") is not None:
            import torch

            torch.set_num_threads(threads)
            torch.manual_seed(seed)
            if self.torch_device == "cuda":
                if not torch.cuda.is_available():
                    raise UsageError("profile 'cuda' is not available here: torch sees no CUDA device")
                torch.cuda.manual_seed_all(seed)
                torch.cuda.reset_peak_memory_stats()
                props = torch.cuda.get_device_properties(0)
                info.update(gpu=props.name, gpu_memory_bytes=props.total_memory,
                            cuda=torch.version.cuda, driver=_nvidia_driver())
        if self.kind == "quantum":
            from importlib.metadata import version

            info.update(simulator=dict(self.simulator), qiskit=version("qiskit"), qiskit_aer=version("qiskit-aer"))
        return info


def import_torch_lazies() -> None:
    """Where torch is imported, import what torch itself imports on first use in any training run:
    its compiler stack (``torch._dynamo`` and sympy, about 820 modules, 1.2 s on a 2-core machine),
    which the first optimiser built pulls in (``Optimizer.add_param_group`` is wrapped in
    ``torch._disable_dynamo``, which imports it on its first call). Called before a method's
    training clock starts: a library's import is no more the method's training than the imports of
    its own module are, and inside the clock it was a third of fedavg's quick training."""
    if "torch" in sys.modules:
        import torch._dynamo  # noqa: F401


def _nvidia_driver() -> str | None:
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        return text.split("Kernel Module")[1].split()[0] if "Kernel Module" in text else text.strip()
    except (OSError, IndexError):
        return None


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("cpu", "PyTorch on the CPU, 1 thread per run (ADVBENCH_THREADS or --threads for more)", "torch", "cpu"),
        Profile("cuda", "PyTorch on the first CUDA device", "torch", "cuda"),
        Profile("aer-statevector", "qiskit-aer, exact expectation values", "quantum",
                simulator={"method": "statevector", "shots": None, "noise": None}),
        Profile("aer-shots", "qiskit-aer, 1024 measurement shots, seeded", "quantum",
                simulator={"method": "statevector", "shots": 1024, "noise": None}),
        Profile("aer-noisy", "qiskit-aer, 1024 shots with the noise model of GenericBackendV2(seed=...)", "quantum",
                simulator={"method": "density_matrix", "shots": 1024, "noise": "GenericBackendV2"}),
    )
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise unknown("profile", name, PROFILES)
    return PROFILES[name]
