"""edge: int8 model against its fp32 source, quantise/dequantise by hand against torch's, pruning
sparsity and prune.remove, data integrity, and the reference baseline's quick target via the harness."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from torch import nn  # noqa: E402

from advbench.baselines import edge as be  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution, SolutionError  # noqa: E402
from advbench.task import Problem, Seal  # noqa: E402
from advbench.tasks import edge as edge_pkg  # noqa: E402
from advbench.tasks.edge import contract as ec  # noqa: E402
from advbench.tasks.edge import heldout as te  # noqa: E402

KEY = b"some-secret-key-123"


class NullCtx:
    def count(self, n):
        pass


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return te.load_split(Seal(0))


@pytest.fixture(scope="module")
def fp32(data):
    train, _ = data
    torch.manual_seed(0)
    model = be.DigitCNN()
    be.train_epochs(model, torch.as_tensor(train.x), torch.as_tensor(train.y), 5, 1e-3, be.Config(),
                    np.random.default_rng(0), NullCtx())
    return model.eval()


@pytest.fixture(scope="module")
def engine():
    return be.pick_engine(be.Config().engine)


@pytest.fixture(scope="module")
def int8(fp32, data, engine):
    train, _ = data
    calibration = [torch.as_tensor(train.x[i:i + 64]) for i in range(0, 512, 64)]
    return be.quantize_static(fp32, calibration, engine)


def test_int8_outputs_close_to_fp32_and_same_predictions(fp32, int8, data, engine):
    _, test = data
    x = torch.as_tensor(test.x)
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        with torch.inference_mode():
            a, b = fp32(x), int8(x)
    finally:
        torch.backends.quantized.engine = old
    assert b.dtype == torch.float32 and b.shape == a.shape  # float in, float out (stubs inside)
    assert (a.argmax(1) == b.argmax(1)).float().mean().item() >= 0.98
    # Logit error small against the logits' own spread (8-bit steps through 4 layers).
    assert (a - b).abs().mean().item() < 0.05 * a.abs().mean().item() + 0.05


def test_int8_model_is_fused_and_quantised(int8):
    from torch.ao.nn.intrinsic import quantized as nniq
    from torch.ao.nn import quantized as nnq

    assert isinstance(int8.conv1, nniq.ConvReLU2d) and isinstance(int8.conv2, nniq.ConvReLU2d)
    assert isinstance(int8.fc1, nniq.LinearReLU) and isinstance(int8.fc2, nnq.Linear)
    assert isinstance(int8.bn1, nn.Identity) and isinstance(int8.relu1, nn.Identity)  # folded into conv1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in int8.modules())
    assert ec.state_dict_bytes(be.DigitCNN()) / ec.state_dict_bytes(int8) > 3.5


def test_quantize_dequantize_by_hand_matches_torch():
    """Affine quint8 with min/max calibration: scale = (max - min) / 255, zero point = round(-min / scale)."""
    from torch.ao.quantization.observer import MinMaxObserver

    g = torch.Generator().manual_seed(0)
    t = torch.randn(1000, generator=g) * 0.7 + 0.2
    lo, hi = min(t.min().item(), 0.0), max(t.max().item(), 0.0)  # the range must contain 0 exactly
    scale = (hi - lo) / 255
    zero_point = int(np.clip(round(-lo / scale), 0, 255))
    obs = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    obs(t)
    s, z = obs.calculate_qparams()
    assert s.item() == pytest.approx(scale, rel=1e-6) and z.item() == zero_point
    q = torch.quantize_per_tensor(t, s.item(), z.item(), torch.quint8)
    by_hand = torch.clamp(torch.round(t / s.item()) + z.item(), 0, 255)
    assert torch.equal(q.int_repr().to(torch.float32), by_hand)
    torch.testing.assert_close(q.dequantize(), (by_hand - z.item()) * s.item())
    assert (q.dequantize() - t).abs().max().item() <= s.item() / 2 + 1e-6  # within half a step


def test_int8_linear_weights_by_hand(fp32, int8):
    """fc2 is not fused: its int8 weights are symmetric per-output-channel qint8 of the fp32 weights."""
    w = fp32.fc2.weight.detach()
    qw = int8.fc2.weight()
    scale = w.abs().amax(1) / ((127 - (-128)) / 2)  # symmetric over [-128, 127]
    torch.testing.assert_close(qw.q_per_channel_scales().to(torch.float32), scale, rtol=1e-5, atol=1e-8)
    assert torch.all(qw.q_per_channel_zero_points() == 0)
    by_hand = torch.clamp(torch.round(w / scale[:, None]), -128, 127)
    assert (qw.int_repr().to(torch.float32) - by_hand).abs().max().item() <= 1  # float ties may round apart
    assert (qw.int_repr().to(torch.float32) == by_hand).float().mean().item() > 0.99


def test_pruning_sparsity_exact_and_remove_leaves_plain_tensors():
    torch.manual_seed(0)
    model = be.DigitCNN()
    fp32_bytes = ec.state_dict_bytes(model)
    total = sum(m.weight.numel() for m, _ in be.prunable(model))
    be.prune_global(model, 0.7)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in be.prunable(model))
    assert zeros == round(0.7 * total)
    masked_bytes = ec.state_dict_bytes(model)
    assert masked_bytes > 1.8 * fp32_bytes  # weight_orig + weight_mask: the size trap
    be.remove_masks(model)
    for m, _ in be.prunable(model):
        assert type(m.weight) is nn.Parameter and not hasattr(m, "weight_orig") and not hasattr(m, "weight_mask")
        assert not m._forward_pre_hooks
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert ec.weight_sparsity(model) == pytest.approx(0.7, abs=1e-6)
    assert ec.state_dict_bytes(model) == pytest.approx(fp32_bytes, rel=0.01)


def test_split_is_a_stratified_partition(data):
    from sklearn.datasets import load_digits

    train, test = data
    assert train.x.shape == (1347, 1, 8, 8) and test.x.shape == (450, 1, 8, 8)
    d = load_digits()
    full = np.column_stack([(d.images / 16).astype(np.float32).reshape(len(d.target), -1), d.target])
    both = np.vstack([np.column_stack([s.x.reshape(len(s.y), -1), s.y]) for s in (train, test)])
    assert np.array_equal(np.unique(full, axis=0, return_counts=True)[1], np.unique(both, axis=0, return_counts=True)[1])
    assert np.array_equal(np.sort(full, axis=0), np.sort(both, axis=0))
    assert np.all(np.abs(np.bincount(test.y) - np.bincount(d.target) * 0.25) <= 1)
    problem = te.EdgeTask().build(variant="digits-cnn", seed=0, budget=edge_pkg.SPEC.budgets["quick"], seal=Seal(0))
    assert not hasattr(problem.train, "heldout") and np.array_equal(problem.heldout.y, test.y)


def test_unsealed_split_is_the_old_one_and_sealed_split_differs(data):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    train, test = data
    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split((d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64),
                                              test_size=0.25, stratify=d.target, random_state=0)  # the old code
    assert np.array_equal(test.x, x_te) and np.array_equal(test.y, y_te) and np.array_equal(train.x, x_tr)
    sealed_train, sealed_test = te.load_split(Seal(0, key=KEY))
    assert not np.array_equal(sealed_test.x, test.x)
    assert np.array_equal(np.bincount(sealed_test.y), np.bincount(test.y))  # still stratified, same sizes
    problem = te.EdgeTask().build(variant="digits-cnn", seed=0, budget=None, seal=Seal(0, key=KEY))
    assert np.array_equal(problem.heldout.x, sealed_test.x) and np.array_equal(problem.train.x, sealed_train.x)


def test_evaluate_floor_and_compressed(fp32, int8, data, engine):
    _, test = data
    problem = Problem(train=None, heldout=test)
    cpu = get_profile("cpu")
    threads, eng = torch.get_num_threads(), torch.backends.quantized.engine
    floor = te.EdgeTask().evaluate(LocalSolution(ec.EdgeSolution(fp32=fp32)), problem, cpu)
    assert set(floor) == {m.name for m in edge_pkg.SPEC.metrics}
    assert floor["acc_drop"] == 0 and floor["size_ratio"] == 1 and floor["prune_sparsity"] == 0
    assert 0.5 < floor["speedup_b256"] < 2  # the same model against itself (loose: shared CPU)
    m = te.EdgeTask().evaluate(LocalSolution(ec.EdgeSolution(fp32=fp32, int8=int8, quant_engine=engine)), problem, cpu)
    assert m["size_ratio"] > 3.5 and abs(m["acc_drop"]) <= 1.5
    assert torch.get_num_threads() == threads and torch.backends.quantized.engine == eng  # restored
    # A bare module is not an EdgeSolution: the TypeError raised next to it comes back as a SolutionError.
    with pytest.raises(SolutionError, match="TypeError: solution must have an nn.Module .fp32"):
        te.EdgeTask().evaluate(LocalSolution(fp32), problem, cpu)


def test_evaluate_metrics_equal_the_old_in_process_ones(fp32, int8, data, engine):
    """Accuracies, sizes and sparsity as the old evaluate computed them on the models themselves."""
    import copy

    _, test = data
    pruned = be.remove_masks(be.prune_global(copy.deepcopy(fp32), 0.7))
    solution = ec.EdgeSolution(fp32=fp32, int8=int8, pruned=pruned, quant_engine=engine)
    m = te.EdgeTask().evaluate(LocalSolution(solution), Problem(train=None, heldout=test), get_profile("cpu"))
    x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        with torch.inference_mode():
            acc = {k: (mod(x).argmax(1) == y).float().mean().item() for k, mod in
                   (("fp32", fp32), ("int8", int8), ("pruned", pruned))}
    finally:
        torch.backends.quantized.engine = old
    assert m["fp32_acc"] == acc["fp32"] and m["int8_acc"] == acc["int8"]
    assert m["acc_drop"] == 100.0 * (acc["fp32"] - acc["int8"])
    assert m["prune_acc_drop"] == 100.0 * (acc["fp32"] - acc["pruned"])
    assert m["size_ratio"] == ec.state_dict_bytes(fp32) / ec.state_dict_bytes(int8)
    assert m["pruned_size_ratio"] == ec.state_dict_bytes(fp32) / ec.state_dict_bytes(pruned)
    assert m["prune_sparsity"] == ec.weight_sparsity(pruned)
    assert ec.LATENCY_BATCHES == edge_pkg.LATENCY_BATCHES and all(m[f"latency_int8_b{b}_ms"] > 0 for b in ec.LATENCY_BATCHES)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # torch's loader of quantized tensors
def test_solution_survives_pickle_to_the_scoring_process(fp32, int8, data, engine):
    """The scoring process gets the solution as a pickle. Plain pickle breaks torch's int8 convs
    (pytorch/pytorch#25137); EdgeSolution's own pickling rebuilds them and repacks for its engine."""
    import pickle

    _, test = data
    with pytest.raises(AttributeError):  # the torch bug this works around (if this fails, torch fixed it)
        pickle.loads(pickle.dumps(int8)).conv1(torch.quantize_per_tensor(torch.rand(1, 1, 8, 8), 0.1, 0, torch.quint8))
    solution = ec.EdgeSolution(fp32=fp32, int8=int8, quant_path="eager", quant_engine=engine)
    before = torch.backends.quantized.engine
    copy = pickle.loads(pickle.dumps(solution, protocol=5))
    assert torch.backends.quantized.engine == before  # the engine is set for the load only
    assert copy.quant_path == "eager" and copy.quant_engine == engine and copy.pruned is None
    x = torch.as_tensor(test.x)
    torch.backends.quantized.engine = engine
    try:
        with torch.inference_mode():
            assert torch.equal(copy.int8(x), int8(x)) and torch.equal(copy.fp32(x), fp32(x))
    finally:
        torch.backends.quantized.engine = before
    assert ec.state_dict_bytes(copy.int8) == ec.state_dict_bytes(int8)
    problem = Problem(train=None, heldout=test)
    a = te.EdgeTask().evaluate(LocalSolution(solution), problem, None)
    b = te.EdgeTask().evaluate(LocalSolution(copy), problem, None)
    assert {k: v for k, v in a.items() if "latency" not in k and "speedup" not in k} == \
        {k: v for k, v in b.items() if "latency" not in k and "speedup" not in k}


def test_evaluate_refuses_a_malformed_measurement(data):
    _, test = data
    problem = Problem(train=None, heldout=test)
    good = {"pred": {k: np.zeros(len(test.y), np.int64) for k in ec.MODELS}, "bytes": {k: 100 for k in ec.MODELS},
            "latency": {b: (1e-3, 1e-3, 1.0) for b in ec.LATENCY_BATCHES}, "prune_sparsity": 0.5}

    class Fake(LocalSolution):  # a scoring process whose measure() sends back `reply`
        def __init__(self, reply):
            super().__init__(None)
            self.reply = reply

        def apply(self, fn, *args, **kwargs):
            return self.reply

    assert te.EdgeTask().evaluate(Fake(good), problem, None)["size_ratio"] == 1.0
    bad_latency = {**good, "latency": {**good["latency"], 256: (float("nan"), 1e-3, 1.0)}}
    bad_pred = {**good, "pred": {**good["pred"], "int8": np.zeros(3, np.int64)}}
    bad_float = {**good, "pred": {**good["pred"], "fp32": np.zeros(len(test.y))}}
    for reply in (bad_latency, bad_pred, bad_float, {**good, "prune_sparsity": float("inf")},
                  {**good, "bytes": {**good["bytes"], "int8": 0}}):
        with pytest.raises(ValueError):
            te.EdgeTask().evaluate(Fake(reply), problem, None)
    with pytest.raises(TypeError):
        te.EdgeTask().evaluate(Fake([1, 2]), problem, None)


@pytest.mark.slow
def test_quick_target_reference(tmp_path):
    from advbench.runner import run

    rec = run("edge", "reference", budget="quick", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    assert rec["targets_met"], rec["metrics"]
    assert rec["config"]["method"]["quant_path"].startswith("torch.ao.quantization eager")
    assert rec["metrics"]["prune_sparsity"] == pytest.approx(0.7, abs=1e-6)


# ---- pytest-benchmark micro-benchmark (disabled by default: `pytest --benchmark-enable -k bench`) ----
@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_bench_forward_b256(benchmark, which, fp32, int8, data, engine):
    _, test = data
    x = torch.as_tensor(test.x[:256]).contiguous()
    model = fp32 if which == "fp32" else int8
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    benchmark.group = "DigitCNN forward, batch 256, 1 thread"
    try:
        with torch.inference_mode():
            benchmark(model, x)
    finally:
        torch.backends.quantized.engine = old
