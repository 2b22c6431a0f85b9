"""edge: int8 model against its fp32 source, quantise/dequantise by hand against torch's, pruning
sparsity and prune.remove, data integrity, and the reference baseline's quick target via the harness."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from torch import nn  # noqa: E402

from advbench.baselines import edge as be  # noqa: E402
from advbench.tasks import edge as te  # noqa: E402


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
    return te.load_split(0)


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
    assert te.state_dict_bytes(be.DigitCNN()) / te.state_dict_bytes(int8) > 3.5


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
    fp32_bytes = te.state_dict_bytes(model)
    total = sum(m.weight.numel() for m, _ in be.prunable(model))
    be.prune_global(model, 0.7)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in be.prunable(model))
    assert zeros == round(0.7 * total)
    masked_bytes = te.state_dict_bytes(model)
    assert masked_bytes > 1.8 * fp32_bytes  # weight_orig + weight_mask: the size trap
    be.remove_masks(model)
    for m, _ in be.prunable(model):
        assert type(m.weight) is nn.Parameter and not hasattr(m, "weight_orig") and not hasattr(m, "weight_mask")
        assert not m._forward_pre_hooks
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert te.weight_sparsity(model) == pytest.approx(0.7, abs=1e-6)
    assert te.state_dict_bytes(model) == pytest.approx(fp32_bytes, rel=0.01)


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
    problem = te.EdgeTask().build(variant="digits-cnn", seed=0, budget=te.SPEC.budgets["quick"])
    assert not hasattr(problem.train, "heldout") and np.array_equal(problem.heldout.y, test.y)


def test_evaluate_floor_and_compressed(fp32, int8, data, engine):
    _, test = data
    problem = te.Problem(train=None, heldout=test)
    threads, eng = torch.get_num_threads(), torch.backends.quantized.engine
    floor = te.EdgeTask().evaluate(te.EdgeSolution(fp32=fp32), problem, None)
    assert set(floor) == {m.name for m in te.SPEC.metrics}
    assert floor["acc_drop"] == 0 and floor["size_ratio"] == 1 and floor["prune_sparsity"] == 0
    assert 0.5 < floor["speedup_b256"] < 2  # the same model against itself (loose: shared CPU)
    m = te.EdgeTask().evaluate(te.EdgeSolution(fp32=fp32, int8=int8, quant_engine=engine), problem, None)
    assert m["size_ratio"] > 3.5 and abs(m["acc_drop"]) <= 1.5
    assert torch.get_num_threads() == threads and torch.backends.quantized.engine == eng  # restored
    with pytest.raises(TypeError):
        te.EdgeTask().evaluate(fp32, problem, None)


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
