"""transformer: the baseline's attention and whole model against PyTorch's own, on identical inputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from advbench.baselines import transformer as tb  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.transformer import SPEC  # noqa: E402
from advbench.tasks.transformer import contract as tt  # noqa: E402
from advbench.tasks.transformer import heldout as th  # noqa: E402

D, H = 64, 4


def mha_pair(seed: int = 0):
    """Our MultiHeadAttention and nn.MultiheadAttention holding the same weights."""
    torch.manual_seed(seed)
    ours = tb.MultiHeadAttention(D, H).eval()
    peer = nn.MultiheadAttention(D, H, dropout=0.0, batch_first=True).eval()
    with torch.no_grad():
        peer.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        peer.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        peer.out_proj.weight.copy_(ours.out_proj.weight)
        peer.out_proj.bias.copy_(ours.out_proj.bias)
    return ours, peer


def test_attention_matches_nn_multihead_attention_self_and_cross():
    ours, peer = mha_pair()
    q, kv = torch.randn(3, 7, D), torch.randn(3, 11, D)
    torch.testing.assert_close(ours(q, q, q), peer(q, q, q, need_weights=False)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(q, kv, kv), peer(q, kv, kv, need_weights=False)[0], atol=1e-5, rtol=1e-5)


def test_attention_masks_match_peer_conventions():
    """Causal + key padding: MHA's True = masked is inverted correctly."""
    ours, peer = mha_pair(1)
    x = torch.randn(2, 6, D)
    pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])  # second sequence has 2 pad positions
    causal_mha = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)  # True = masked (MHA)
    expected = peer(x, x, x, attn_mask=causal_mha, key_padding_mask=pad, need_weights=False)[0]
    got = ours(x, x, x, causal=True, key_padding_mask=pad)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_scaled_dot_product_matches_torch_sdpa_with_bool_mask():
    q, k, v = torch.randn(2, H, 5, 16), torch.randn(2, H, 9, 16), torch.randn(2, H, 9, 16)
    allowed = torch.rand(2, 1, 5, 9) > 0.3
    allowed[..., 0] = True  # SDPA gives NaN on fully masked rows; keep one key per row
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # True = attend (SDPA)
    torch.testing.assert_close(tb.scaled_dot_product_attention(q, k, v, allowed), expected, atol=1e-5, rtol=1e-5)


def test_fully_masked_query_row_is_zero_not_nan():
    q, k, v = torch.randn(1, 1, 2, 8), torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8)
    allowed = torch.tensor([[True, True, True], [False, False, False]])
    out = tb.scaled_dot_product_attention(q, k, v, allowed)
    assert torch.isfinite(out).all() and torch.all(out[0, 0, 1] == 0)


@pytest.mark.parametrize("masking", ["none", "causal", "padding", "a fully masked row"])
def test_the_fused_path_equals_the_explicit_reference_forward_and_backward(masking):
    """What the module runs without dropout (PyTorch's fused kernel) against the explicit softmax
    this file keeps as the checked reference: outputs and gradients, every mask kind."""
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, H, 6, 16, dtype=torch.float64, requires_grad=True) for _ in range(3))
    allowed = {"none": None, "causal": tb.attention_mask(6, 6, causal=True),
               "padding": tb.attention_mask(6, 6, key_padding_mask=torch.tensor([[False] * 6, [False] * 3 + [True] * 3])),
               "a fully masked row": torch.rand(2, 1, 6, 6) > 0.5}[masking]
    if masking == "a fully masked row":
        allowed[0, 0, 2] = False
    outs, grads = [], []
    for attend in (tb.scaled_dot_product_attention, tb.fused_attention):
        out = attend(q, k, v, allowed)
        outs.append(out)
        grads.append(torch.autograd.grad((out * torch.arange(out.numel()).view_as(out)).sum(), (q, k, v)))
    torch.testing.assert_close(outs[1], outs[0])
    for a, b in zip(grads[1], grads[0]):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b)
    if masking == "a fully masked row":
        assert torch.all(outs[1][0, :, 2] == 0)


def test_the_module_takes_the_fused_path_unless_dropout_is_on(monkeypatch):
    calls = []
    monkeypatch.setattr(tb, "fused_attention", lambda *a: calls.append(1) or tb.scaled_dot_product_attention(*a))
    x = torch.randn(2, 5, D)
    tb.MultiHeadAttention(D, H, dropout=0.1).train()(x, x, x)
    assert calls == []  # dropout on the weights: the explicit path
    tb.MultiHeadAttention(D, H, dropout=0.1).eval()(x, x, x)
    tb.MultiHeadAttention(D, H, dropout=0.0).train()(x, x, x)
    assert calls == [1, 1]


def copy_into_nn_transformer(model: tb.Seq2SeqTransformer) -> nn.Transformer:
    cfg = model.cfg
    peer = nn.Transformer(d_model=cfg.d_model, nhead=cfg.n_heads, num_encoder_layers=cfg.n_encoder_layers,
                          num_decoder_layers=cfg.n_decoder_layers, dim_feedforward=cfg.d_ff, dropout=0.0,
                          batch_first=True)
    peer.encoder.enable_nested_tensor = False  # the nested-tensor fast path would change the numerics
    peer.encoder.use_nested_tensor = False

    def attn(dst: nn.MultiheadAttention, src: tb.MultiHeadAttention) -> None:
        dst.in_proj_weight.copy_(torch.cat([src.q_proj.weight, src.k_proj.weight, src.v_proj.weight]))
        dst.in_proj_bias.copy_(torch.cat([src.q_proj.bias, src.k_proj.bias, src.v_proj.bias]))
        dst.out_proj.weight.copy_(src.out_proj.weight)
        dst.out_proj.bias.copy_(src.out_proj.bias)

    def copy(dst: nn.Module, src: nn.Module) -> None:
        dst.load_state_dict(src.state_dict())

    with torch.no_grad():
        for dst, src in zip(peer.encoder.layers, model.encoder_layers):
            attn(dst.self_attn, src.self_attn)
            copy(dst.linear1, src.ff.linear1), copy(dst.linear2, src.ff.linear2)
            copy(dst.norm1, src.norm1), copy(dst.norm2, src.norm2)
        for dst, src in zip(peer.decoder.layers, model.decoder_layers):
            attn(dst.self_attn, src.self_attn)
            attn(dst.multihead_attn, src.cross_attn)
            copy(dst.linear1, src.ff.linear1), copy(dst.linear2, src.ff.linear2)
            copy(dst.norm1, src.norm1), copy(dst.norm2, src.norm2), copy(dst.norm3, src.norm3)
        copy(peer.encoder.norm, model.encoder_norm)
        copy(peer.decoder.norm, model.decoder_norm)
    return peer.eval()


def test_whole_encoder_decoder_matches_nn_transformer():
    torch.manual_seed(0)
    cfg = tb.Config(dropout=0.0)
    model = tb.Seq2SeqTransformer(cfg, tt.VOCAB_SIZE, tt.PAD).eval()
    peer = copy_into_nn_transformer(model)
    src = torch.randint(tt.FIRST_SYMBOL, tt.VOCAB_SIZE, (4, 10))
    src[1, 7:] = tt.PAD  # padded source
    tgt_in = torch.randint(tt.FIRST_SYMBOL, tt.VOCAB_SIZE, (4, 10))
    tgt_in[:, 0] = tt.BOS
    with torch.no_grad():
        s = model._embed(model.src_embed, src)
        t = model._embed(model.tgt_embed, tgt_in)
        causal = nn.Transformer.generate_square_subsequent_mask(10, dtype=torch.bool)
        pad = src == tt.PAD
        expected = peer(s, t, tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad,
                        tgt_is_causal=True)
        memory, src_pad = model.encode(src)
        y = t
        for layer in model.decoder_layers:
            y = layer(y, memory, tgt_in == tt.PAD, src_pad)
        got = model.decoder_norm(y)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_dropout_is_off_when_decoding():
    torch.manual_seed(0)
    model = tb.Seq2SeqTransformer(tb.Config(dropout=0.5), tt.VOCAB_SIZE, tt.PAD).train()
    translator = tb.GreedyTranslator(model, tt.BOS, "cpu")
    src = np.random.default_rng(0).integers(tt.FIRST_SYMBOL, tt.VOCAB_SIZE, size=(8, 10))
    first, second = translator.translate(src), translator.translate(src)
    assert np.array_equal(first, second) and model.training  # deterministic, and train mode restored


def test_task_data_targets_and_heldout_separation():
    task = th.TransformerTask()
    problem = task.build(variant="sort", seed=3, budget=SPEC.budgets["quick"], seal=Seal(3))
    src, tgt = problem.train.sample(5)
    assert np.array_equal(tgt, np.sort(src, axis=1))
    assert not hasattr(problem.train, "heldout") and "src" in problem.heldout
    # The method's stream and the held-out stream differ.
    assert not np.array_equal(problem.train.sample(tt.N_HELDOUT)[0], problem.heldout["src"])

    class Oracle:
        def translate(self, s):
            return np.sort(s, axis=1)

    assert task.evaluate(LocalSolution(Oracle()), problem, get_profile("cpu")) == {"exact_match": 1.0,
                                                                                     "token_accuracy": 1.0}


def test_unsealed_heldout_is_unchanged_and_sealing_changes_it():
    task, budget = th.TransformerTask(), SPEC.budgets["quick"]
    plain = task.build(variant="reverse", seed=5, budget=budget, seal=Seal(5))
    # The held-out sources as the task drew them before sealing existed: stream 2 of the run seed.
    old = np.random.default_rng([5, 2]).integers(tt.FIRST_SYMBOL, tt.VOCAB_SIZE, size=(tt.N_HELDOUT, tt.SEQ_LEN),
                                                 dtype=np.int64)
    assert np.array_equal(plain.heldout["src"], old) and np.array_equal(plain.heldout["tgt"], old[:, ::-1])
    sealed = task.build(variant="reverse", seed=5, budget=budget, seal=Seal(5, key=b"some-secret-key-123"))
    assert sealed.heldout["src"].shape == old.shape and not np.array_equal(sealed.heldout["src"], old)
    assert np.array_equal(sealed.heldout["tgt"], sealed.heldout["src"][:, ::-1])
    # The method's training stream is public and does not depend on the seal.
    assert np.array_equal(plain.train.sample(4)[0], sealed.train.sample(4)[0])


class _Returns:
    def __init__(self, out):
        self.out = out

    def translate(self, src):
        return self.out


@pytest.mark.parametrize("bad,error", [(np.zeros((tt.N_HELDOUT, 9), np.int64), ValueError),
                                       (np.full((tt.N_HELDOUT, tt.SEQ_LEN), np.nan), ValueError),
                                       (np.full((tt.N_HELDOUT, tt.SEQ_LEN), "a"), TypeError)])
def test_evaluate_rejects_malformed_output(bad, error):
    task = th.TransformerTask()
    problem = task.build(variant="copy", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    with pytest.raises(error):
        task.evaluate(LocalSolution(_Returns(bad)), problem, get_profile("cpu"))


@pytest.mark.slow
def test_quick_target_copy(tmp_path):
    from advbench.runner import run

    rec = run("transformer", "reference", budget="quick", variant="copy", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    assert rec["targets_met"], rec["metrics"]
    assert rec["time_to_target_seconds"] is not None


def test_floor_is_far_below_target(tmp_path):
    from advbench.runner import run

    rec = run("transformer", "floor", budget="quick", variant="copy", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok" and rec["metrics"]["exact_match"] < 0.01 and not rec["targets_met"]


# ---- pytest-benchmark micro-benchmarks (disabled by default: `pytest --benchmark-enable -k bench`) ----
def _attention_step(module, x):
    def step():
        out = module(x, x, x) if isinstance(module, tb.MultiHeadAttention) else module(x, x, x, need_weights=False)[0]
        out.sum().backward()

    return step


@pytest.mark.parametrize("impl", ["advbench", "advbench explicit softmax", "torch.nn.MultiheadAttention"])
@pytest.mark.parametrize("shape", [(128, 24, 64, 4), (16, 256, 256, 8)], ids=["B128-T24-d64-h4", "B16-T256-d256-h8"])
def test_bench_attention_forward_backward(benchmark, impl, shape, monkeypatch):
    """Side by side in one run: ``pytest tests/test_transformer.py --benchmark-enable -k bench_attention``."""
    b, t, d, h = shape
    torch.manual_seed(0)
    ours = tb.MultiHeadAttention(d, h).train()  # no dropout: the fused path
    if impl == "advbench explicit softmax":
        monkeypatch.setattr(tb, "fused_attention", tb.scaled_dot_product_attention)
    module = nn.MultiheadAttention(d, h, dropout=0.0, batch_first=True).train() if impl.startswith("torch") else ours
    x = torch.randn(b, t, d)
    benchmark.group = f"attention fwd+bwd (batch {b}, len {t}, d {d}, {h} heads)"
    benchmark(_attention_step(module, x))
