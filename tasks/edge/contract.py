"""The public contract of the ``edge`` task: what a method receives and must return, and the code
that turns a solution into deployable files and measures them.

A method receives an :class:`EdgeTrain` as ``train``: ``model``, the task's trained fp32
:class:`DigitCNN` (the *source model* to compress, in eval mode), ``x`` (``float32 (1347, 1, 8,
8)`` in [0, 1]) and ``y`` (``int64`` labels) for calibration and fine-tuning, and
``source_training``, how the task trained the source (:func:`train_source_model`).

It returns an :class:`EdgeSolution` (or any object with ``int8``, ``pruned`` and ``quant_engine``):
``int8``, the compressed model (``float32 (B, 1, 8, 8)`` -> ``(B, 10)`` logits, quantise /
dequantise stubs inside) or ``None`` (deploy the source model); ``pruned``, a pruned model or
``None``; ``quant_engine``, the ``torch.backends.quantized.engine`` its int8 weights were packed
for; ``quant_path`` and ``prune_amount`` for the record. The fp32 model every ratio is taken
against is the task's own: a method cannot hand in another one.

How a solution is measured (see the task's docstring for why):

1. The harness asks the solution for ``deployable_files()`` (:func:`export`, run in the scoring
   process where the solution lives): each model becomes the bytes of a TorchScript file
   (:func:`deployable_bytes`: ``torch.jit.script``, else ``torch.jit.trace``, then
   ``torch.jit.save``), the file one ships to a device. Only those bytes come back.
2. :func:`measure_files` runs in the harness's *clean* scoring process (``handle.compute``: jailed,
   and it has never opened a solution): it writes the task's own source file and the solution's
   files into a folder of its private /tmp, takes each file's size from the file system, loads
   every model back *from its file* with ``torch.jit.load`` and measures predictions on the
   held-out images (never their labels), the numbers each file stores (:func:`stored_numbers`)
   and paired single-thread latencies (:func:`paired_latency`). No Python code of the method's runs
   in that process. It refuses a file whose code reads or writes files or forks threads
   (:func:`refused_call`), and a model whose saved state changes while it runs (a cache).

A method may call :func:`measure_deployed` itself (on its training images) to see what the task
will measure: the same measurement, in a fresh subprocess of its own.

The solution reaches the scoring process as a pickle. PyTorch's eager int8 convolutions do not
survive ``pickle`` (their ``__setstate__`` skips ``nn.Module.__init__``: pytorch/pytorch#25137) and
TorchScript modules do not pickle at all, so :class:`EdgeSolution` pickles its modules itself:
eager int8 modules are rebuilt the way their own ``__deepcopy__`` does and repacked under
``quant_engine``, TorchScript modules travel as ``torch.jit.save`` bytes. Return an
``EdgeSolution`` (not another object with the same attributes) when a model is quantised or
scripted.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import statistics
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advbench.tasks.edge import LATENCY_BATCHES

N_CLASSES = 10
INPUT_SHAPE = (1, 8, 8)
WARMUP_CALLS = 10
REPEATS = 21  # odd: the median is one measured repeat
MIN_REPEAT_SECONDS = 0.02  # each repeat loops the call until it lasts this long (timer resolution, noise)
DISTINCT_INPUTS = 16  # latency calls cycle through this many different batches (no cache can help)
MODELS = ("fp32", "int8", "pruned")
KNOWN_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")
MAX_FILE_BYTES = 256 * 2**20  # a deployable file larger than this is refused (the source's is 1.1 MB)
DEPLOY_TIMEOUT = 600.0  # seconds the measuring process may take (it takes about 5)
SOURCE_LR = 1e-3
SOURCE_STREAM = 5  # numpy stream of the source model's batch order: default_rng([seed, 5])

__all__ = ["LATENCY_BATCHES", "N_CLASSES", "INPUT_SHAPE", "WARMUP_CALLS", "REPEATS", "MIN_REPEAT_SECONDS",
           "DISTINCT_INPUTS", "MODELS", "Images", "EdgeTrain", "EdgeSolution", "DigitCNN", "batches",
           "train_epochs", "train_source_model", "deployable_bytes", "export", "stored_numbers", "refused_call",
           "paired_latency", "measure_files", "measure_deployed"]


# ---------------------------------------------------------------- data and solution types
@dataclass
class Images:
    """1x8x8 digit images in [0, 1] and their labels."""

    x: np.ndarray  # float32 (n, 1, 8, 8)
    y: np.ndarray  # int64 (n,)
    n_classes: int = N_CLASSES


@dataclass
class EdgeTrain:
    """What a method gets: the source model to compress and the training images."""

    x: np.ndarray  # float32 (n, 1, 8, 8)
    y: np.ndarray  # int64 (n,)
    model: Any  # DigitCNN, trained by the task (train_source_model), eval mode
    n_classes: int = N_CLASSES
    source_training: dict[str, Any] = field(default_factory=dict)  # how model was trained


@dataclass
class EdgeSolution:
    int8: Any = None  # nn.Module or ScriptModule, or None (= deploy the source model)
    pruned: Any = None  # nn.Module or ScriptModule, or None (= deploy the source model)
    quant_path: str = "none"
    quant_engine: str | None = None
    prune_amount: float = 0.0

    def deployable_files(self) -> dict[str, Any]:
        """:func:`export` of this solution: what the harness asks it for."""
        return export(self)

    # Pickled through _ModulePickler: see the module docstring.
    def __getstate__(self) -> dict[str, Any]:
        buf = io.BytesIO()
        _ModulePickler(buf, protocol=5).dump(dict(self.__dict__))
        return {"quant_engine": self.quant_engine, "fields": buf.getvalue()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # int8 weights are repacked as they load, for the engine they were packed for.
        with _quantized_engine(state["quant_engine"]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)  # quantized-tensor loader
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit.load (see deployable_bytes)
            self.__dict__.update(pickle.loads(state["fields"]))


def _rebuilt_by_deepcopy(cls: type) -> bool:
    """Modules whose pickling is broken: they define ``__setstate__`` (restoring their own fields
    only) and a ``__deepcopy__`` that calls ``nn.Module.__init__`` first (torch.ao quantized convs)."""
    return (issubclass(cls, torch.nn.Module) and getattr(cls, "__deepcopy__", None) is not None
            and cls.__setstate__ is not torch.nn.Module.__setstate__)


def _rebuild_module(cls: type, state: Any) -> Any:
    """What such a module's own ``__deepcopy__`` does: a bare module, then its ``__setstate__``."""
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    module.__setstate__(state)
    return module


def _load_script(data: bytes) -> Any:
    return torch.jit.load(io.BytesIO(data), map_location="cpu")


class _ModulePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.jit.ScriptModule):
            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(obj, buf)
            return _load_script, (buf.getvalue(),)
        if _rebuilt_by_deepcopy(type(obj)):
            return _rebuild_module, (type(obj), obj.__getstate__())
        return NotImplemented


class _quantized_engine:
    """Set ``torch.backends.quantized.engine`` for a block (if ``engine`` is given and supported here)."""

    def __init__(self, engine: str | None) -> None:
        self.engine, self.previous = engine, None

    def __enter__(self) -> None:
        if self.engine:
            if self.engine in torch.backends.quantized.supported_engines:
                self.previous = torch.backends.quantized.engine
                torch.backends.quantized.engine = self.engine

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            torch.backends.quantized.engine = self.previous


# ---------------------------------------------------------------- the source model
class DigitCNN(nn.Module):
    """The source model: conv32-bn-relu, conv64-bn-relu, max-pool, linear 1024-256-10.

    Input float32 (B, 1, 8, 8) in [0, 1]; output (B, 10) logits. The quantise / dequantise stubs
    are identities until ``torch.ao.quantization.convert`` turns them into real ones.
    """

    # Modules fused into one int8 kernel each (conv+bn+relu: bn folded into the conv weights).
    FUSE = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["fc1", "relu3"]]

    def __init__(self, c1: int = 32, c2: int = 64, hidden: int = 256, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.relu3 = nn.Linear(c2 * 4 * 4, hidden), nn.ReLU()
        self.fc2 = nn.Linear(hidden, n_classes)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.fc1(torch.flatten(x, 1)))
        return self.dequant(self.fc2(x))


def batches(x, y, batch_size: int, rng: np.random.Generator):
    """Shuffled minibatches of tensors ``x``, ``y`` in the order ``rng`` draws."""
    order = torch.as_tensor(rng.permutation(len(y)))
    for i in range(0, len(y), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


def train_epochs(model, x, y, *, epochs: int, lr: float, batch_size: int, rng: np.random.Generator,
                 count=None) -> None:
    """Adam on cross-entropy for ``epochs`` passes over ``(x, y)``; ``count(n)`` after each batch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for xb, yb in batches(x, y, batch_size, rng):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if count is not None:
                count(len(yb))
    model.eval()


def train_source_model(x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int, batch_size: int = 64,
                       lr: float = SOURCE_LR, n_classes: int = N_CLASSES) -> Any:
    """The task's fp32 model, deterministic from ``seed``: the v1 reference's fp32 training.

    Weights from ``torch.manual_seed(seed)`` (the caller's torch generator is left as it was),
    batch order from ``default_rng([seed, 5])``, Adam at ``lr``, one thread. Returns it in eval mode.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitCNN(n_classes=n_classes)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-reproducible, and the fastest for this small model
    try:
        train_epochs(model, torch.as_tensor(x), torch.as_tensor(y), epochs=epochs, lr=lr, batch_size=batch_size,
                     rng=np.random.default_rng([seed, SOURCE_STREAM]))
    finally:
        torch.set_num_threads(threads)
    return model.eval()


# ---------------------------------------------------------------- deployable files
def _trace_input():
    return torch.rand((2, *INPUT_SHAPE), generator=torch.Generator().manual_seed(0))


def deployable_bytes(model: Any, what: str = "model") -> bytes:
    """The TorchScript file of ``model`` (in eval mode), as one ships it: ``torch.jit.save`` bytes.

    A ``ScriptModule`` (scripted or traced) is saved as it is; any other ``nn.Module`` is compiled
    with ``torch.jit.script``, or, if that fails, traced with ``torch.jit.trace`` on two random
    images (which freezes its Python control flow; hand a ScriptModule to decide yourself). A
    module that does neither cannot be deployed: ValueError. TorchScript is deprecated in torch
    2.13 in favour of ``torch.export``, which cannot export eager int8 modules (their packed
    weights lack ``__obj_flatten__``), so its deprecation warnings are silenced here.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the {what} model must be an nn.Module or a ScriptModule, got {type(model).__qualname__}")
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if isinstance(model, torch.jit.ScriptModule):
                compiled = model
            else:
                try:
                    compiled = torch.jit.script(model)
                except Exception as script_error:  # noqa: BLE001 - fall back to tracing, say both if it fails
                    try:
                        compiled = torch.jit.trace(model, _trace_input(), check_trace=False)
                    except Exception as trace_error:  # noqa: BLE001
                        raise ValueError(
                            f"the {what} model cannot be deployed: torch.jit.script failed "
                            f"({_first_line(script_error)}) and torch.jit.trace failed ({_first_line(trace_error)}). "
                            "Hand in a model that TorchScript can compile") from trace_error
            torch.jit.save(compiled, buf)
    finally:
        model.train(was_training)
    return buf.getvalue()


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def export(solution: Any) -> dict[str, Any]:
    """The solution's models as deployable files (``bytes`` or ``None``), by ``EdgeSolution.deployable_files``.

    Returns ``{"int8": bytes | None, "pruned": bytes | None, "quant_engine": str | None}``. The
    fp32 model is the task's, not the solution's: a solution's ``fp32`` attribute is ignored.
    """
    if not (hasattr(solution, "int8") and hasattr(solution, "pruned")):
        raise TypeError("solution must be an EdgeSolution (int8, pruned, quant_engine), "
                        f"got {type(solution).__qualname__}")
    engine = getattr(solution, "quant_engine", None)
    if engine is not None and not isinstance(engine, str):
        raise TypeError(f"quant_engine must be a string or None, got {type(engine).__qualname__}")
    out: dict[str, Any] = {"quant_engine": engine}
    with _quantized_engine(engine):  # int8 weights are unpacked for saving by the engine that packed them
        for name in ("int8", "pruned"):
            model = getattr(solution, name)
            out[name] = None if model is None else deployable_bytes(model, name)
    return out


# ---------------------------------------------------------------- what a file stores
_FLOAT_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "ComplexFloatStorage": np.float32, "ComplexDoubleStorage": np.float64}
_ITEM_BYTES = {"BFloat16Storage": 2, "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
               "ByteStorage": 1, "BoolStorage": 1, "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4,
               "QUInt4x2Storage": 1, "QUInt2x4Storage": 1}
# TorchScript calls a deployed model may not make: reading or writing files (its weights must be in
# its own file) and forking work onto other threads (deployment is one core).
_REFUSED = {"from_file": "reads a file: a deployed model must hold its weights in its own file",
            "load_tensor": "reads a file: a deployed model must hold its weights in its own file",
            "save": "writes a file",
            "fork": "runs work on another thread: deployment is one core"}
_REFUSED_CALL = re.compile(rb"\b(from_file|load_tensor|fork)\b|\b(?:torch|aten)\s*\.\s*(save)\b")
# A number written in TorchScript code (a literal: not part of a name, an attribute or another number).
_LITERAL = re.compile(rb"(?<![\w.])(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


class _Inert:
    """Stands in for every class a TorchScript pickle names: built, never run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _StorageScan(pickle.Unpickler):
    """Reads a TorchScript pickle for its tensor storages only: every global it names becomes an
    inert stand-in, so nothing in the file is ever called."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: dict[str, tuple[str, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        return type(name, (_Inert,), {})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage":
            kind = pid[1].name if isinstance(pid[1], _StorageType) else str(pid[1])
            self.storages[str(pid[2])] = (kind, int(pid[4]))
        return None


def _count(raw: bytes, kind: str, numel: int) -> tuple[int, int]:
    """``(entries, nonzero entries)`` of one storage's bytes (-0.0 is zero; a quantised entry counts
    by its stored integer). Counted from the bytes the file holds, not the size its pickle declares
    (torch stores traced example inputs as empty entries)."""
    if kind in _FLOAT_STORAGES:
        values = np.frombuffer(raw[: len(raw) - len(raw) % np.dtype(_FLOAT_STORAGES[kind]).itemsize],
                               dtype=_FLOAT_STORAGES[kind])
        per_entry = 2 if kind.startswith("Complex") else 1
        return len(values) // per_entry, int(np.count_nonzero(values.reshape(-1, per_entry).any(axis=1)))
    item = _ITEM_BYTES.get(kind)
    if item is None:  # an unknown kind: the declared entry size, else bytes
        item = len(raw) // numel if numel and len(raw) >= numel and len(raw) % numel == 0 else 1
    words = np.frombuffer(raw[: len(raw) - len(raw) % item], dtype=np.uint8).reshape(-1, item)
    if kind == "BFloat16Storage":  # little-endian: the sign bit is the top bit of the second byte
        words = words & np.array([0xFF, 0x7F], dtype=np.uint8)
    return len(words), int(np.count_nonzero(words.any(axis=1)))


def stored_numbers(data: bytes) -> tuple[int, int]:
    """``(numbers, nonzero)`` over every number a TorchScript file holds.

    Module state (``data.pkl``), tensor constants baked into the code (``constants.pkl``), traced
    example inputs: every storage any pickle in the archive refers to is counted once, whatever
    tensor, attribute or container holds it; and every numeric literal written in its code. The
    file is read, never loaded or run.
    """
    numbers = nonzero = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        for name in sorted(names):
            if name.endswith(".py") and "/code/" in name:
                literals = [float(v) for v in _LITERAL.findall(archive.read(name))]
                numbers += len(literals)
                nonzero += sum(v != 0 for v in literals)
            if not name.endswith(".pkl"):
                continue
            scan = _StorageScan(archive.read(name))
            scan.load()
            folder = name[: -len(".pkl")]
            for key, (kind, numel) in sorted(scan.storages.items()):
                entry = f"{folder}/{key}"
                if entry not in names:
                    raise ValueError(f"the TorchScript file names a storage {entry!r} it does not hold")
                entries, nonzeros = _count(archive.read(entry), kind, numel)
                numbers += entries
                nonzero += nonzeros
    return numbers, nonzero


def refused_call(data: bytes) -> tuple[str, str] | None:
    """The first call in a TorchScript file's code that a deployed model may not make, and why.

    ``torch.from_file`` would let a tiny file run on weights left on disk (the file system is not
    sandboxed); ``torch.jit.fork`` would run on a second thread. TorchScript spells out every
    operator it calls in its code, so reading the code finds them.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(".py") and "/code/" in name:
                found = _REFUSED_CALL.search(archive.read(name))
                if found:
                    call = next(g for g in found.groups() if g).decode()
                    return call, _REFUSED[call]
    return None


# ---------------------------------------------------------------- latency
def _per_call(model, inputs: list, n: int) -> float:
    k = len(inputs)
    t = time.perf_counter()
    for i in range(n):
        model(inputs[i % k])
    return (time.perf_counter() - t) / n


def paired_latency(a, b, inputs: list, repeats: int = REPEATS) -> tuple[float, float, float]:
    """Median per-call seconds of ``a`` and ``b`` and the median of per-repeat ratios a / b.

    Call ``i`` of a repeat gets ``inputs[i % len(inputs)]`` (different batches, so that no model
    can answer from a cache). Run with the caller's thread setting; warm-up first (allocator,
    TorchScript's profiling runs), then repeats that alternate a and b so that a burst of load
    from elsewhere hits both.
    """
    with torch.inference_mode():
        for i in range(WARMUP_CALLS):
            a(inputs[i % len(inputs)]), b(inputs[i % len(inputs)])
        # Calls per repeat: enough that one repeat lasts MIN_REPEAT_SECONDS for the slower model.
        one = max(_per_call(a, inputs, 3), _per_call(b, inputs, 3), 1e-6)
        n = max(1, int(MIN_REPEAT_SECONDS / one))
        ta, tb = [], []
        for _ in range(repeats):
            ta.append(_per_call(a, inputs, n))
            tb.append(_per_call(b, inputs, n))
    ratios = [p / q for p, q in zip(ta, tb)]
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def _distinct_batches(x, batch: int, count: int = DISTINCT_INPUTS) -> list:
    """``count`` different batches of ``batch`` images of ``x`` (a fixed, public choice)."""
    rng = np.random.default_rng([batch, 7])
    n = len(x)
    if batch == 1:
        return [x[int(i): int(i) + 1].contiguous() for i in rng.permutation(n)[:count]]
    return [x[rng.permutation(n)[:batch]].contiguous() for _ in range(count)]


# ---------------------------------------------------------------- measuring deployed files
MEASURE = "advbench.tasks.edge.contract:measure_files"


def measure_files(files: Mapping[str, bytes], x: np.ndarray, *, engine: str | None,
                  batches: tuple[int, ...] = LATENCY_BATCHES, folder: str | None = None) -> dict[str, Any]:
    """Write the deployable files, take their sizes, and measure them loaded back, in this process.

    ``files``: ``{"fp32", "int8", "pruned"} -> TorchScript bytes``; ``x``: images (``float32 (N, 1,
    8, 8)``, no labels); ``engine``: the ``torch.backends.quantized.engine`` to load them under.
    ``folder``: where to write the files (kept), else a temporary folder. Returns

    * ``bytes``: model -> file size on disk (``os.path.getsize``);
    * ``pred``: model -> ``int64 (N,)`` predicted classes of the loaded model;
    * ``numbers``: model -> ``(numbers, nonzero)`` stored in its file (:func:`stored_numbers`);
    * ``latency``: batch -> ``(fp32 s, int8 s, median ratio)`` of the loaded models (:func:`paired_latency`).

    Runs where no Python code of a method's has run: the harness's clean scoring process
    (``handle.compute``), or the fresh subprocess of :func:`measure_deployed`. One thread; the
    thread count and quantized engine are restored afterwards.
    """
    if set(files) != set(MODELS):
        raise ValueError(f"measure_files needs files for {MODELS}, got {sorted(files)}")
    if engine is not None and engine not in KNOWN_ENGINES:
        raise ValueError(f"unknown quantized engine {engine!r}; expected one of {KNOWN_ENGINES} or None")
    for name, data in files.items():
        if not isinstance(data, bytes) or not data:
            raise TypeError(f"the {name} file must be non-empty bytes, got {type(data).__qualname__}")
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"the {name} file has {len(data)} bytes, over the limit of {MAX_FILE_BYTES}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="advbench-edge-") as tmp:
        path = Path(folder) if folder is not None else Path(tmp)
        path.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (path / f"{name}.pt").write_bytes(data)
        size = {name: os.path.getsize(path / f"{name}.pt") for name in MODELS}
        threads, previous_engine = torch.get_num_threads(), torch.backends.quantized.engine
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load / save (see deployable_bytes)
                pred, numbers, latency = _measure_folder(path, torch.from_numpy(x), engine, batches)
        finally:  # the process may go on (in-process runs, tests): leave it as it was
            torch.set_num_threads(threads)
            torch.backends.quantized.engine = previous_engine
    return {"bytes": size, "pred": pred, "numbers": numbers, "latency": latency}


def measure_deployed(files: Mapping[str, bytes], x: np.ndarray, *, engine: str | None,
                     batches: tuple[int, ...] = LATENCY_BATCHES, folder: str | Path | None = None,
                     timeout: float = DEPLOY_TIMEOUT) -> dict[str, Any]:
    """:func:`measure_files` in a fresh subprocess that gets no seal key and runs no code of the
    caller's (a method measuring its own files sees what the task will measure)."""
    from advbench.solution import compute_in_subprocess

    kwargs = {"engine": engine, "batches": tuple(int(b) for b in batches),
              "folder": None if folder is None else str(folder)}
    return compute_in_subprocess(("compute", MEASURE, (dict(files), np.ascontiguousarray(x, dtype=np.float32)),
                                  kwargs), timeout=timeout)


def _saved(model) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(model, buf)
    return buf.getvalue()


def _measure_folder(path: Path, x: torch.Tensor, engine: str | None, batches: tuple[int, ...]):
    """(pred, numbers, latency) of the files in ``path``, each model loaded back from its file."""
    torch.set_num_threads(1)  # edge deployment: one core; also far less noisy on a shared machine
    with contextlib.suppress(RuntimeError):  # settable once per process, before any parallel work
        torch.set_num_interop_threads(1)
    if engine is not None:
        if engine not in torch.backends.quantized.supported_engines:
            raise ValueError(f"the quantized engine {engine!r} is not supported here "
                             f"({torch.backends.quantized.supported_engines})")
        torch.backends.quantized.engine = engine  # int8 weights are repacked for it as they load
    models, before, numbers = {}, {}, []
    for name in MODELS:
        data = (path / f"{name}.pt").read_bytes()
        refused = refused_call(data)
        if refused is not None:
            raise ValueError(f"the {name} model calls {refused[0]}, which {refused[1]}")
        numbers.append(stored_numbers(data))
        try:
            model = torch.jit.load(str(path / f"{name}.pt"), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"the {name} file does not load with torch.jit.load: {_first_line(exc)}") from exc
        models[name] = model.eval()
        before[name] = _saved(model)
    pred: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for name in MODELS:
            logits = models[name](x)
            if not (isinstance(logits, torch.Tensor) and logits.is_floating_point()
                    and tuple(logits.shape) == (len(x), N_CLASSES)):
                raise ValueError(f"the {name} model returned {getattr(logits, 'dtype', type(logits).__name__)} "
                                 f"{tuple(getattr(logits, 'shape', ()))}, not float ({len(x)}, {N_CLASSES}) logits")
            if not bool(torch.isfinite(logits).all()):
                raise ValueError(f"the {name} model returned logits that are not finite")
            pred[name] = logits.argmax(1).to(torch.int64).numpy()
    latency = {int(b): paired_latency(models["fp32"], models["int8"], _distinct_batches(x, int(b))) for b in batches}
    for name in MODELS:
        if _saved(models[name]) != before[name]:
            raise ValueError(f"the {name} model changed its own state while it ran: a deployed model must be a "
                             "function of its input (no caches)")
    return pred, dict(zip(MODELS, numbers)), latency
