"""multimodal: attention against nn.MultiheadAttention; data that needs fusion; no leakage; targets."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from advbench.baselines import multimodal as bm  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.multimodal import SPEC  # noqa: E402
from advbench.tasks.multimodal import contract as mc  # noqa: E402
from advbench.tasks.multimodal import heldout as tm  # noqa: E402

KEY = b"some-secret-key-123"


@pytest.fixture(scope="module")
def select_problem():
    return tm.MultimodalTask().build(variant="select", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))


@pytest.fixture(scope="module")
def synergy_problem():
    return tm.MultimodalTask().build(variant="synergy", seed=0, budget=SPEC.budgets["full"], seal=Seal(0))


# ---------------------------------------------------------------- peer check
def _peer(ours: bm.MultiHeadSelfAttention, d: int, heads: int) -> torch.nn.MultiheadAttention:
    peer = torch.nn.MultiheadAttention(d, heads, batch_first=True).double()  # batch_first defaults to False
    with torch.no_grad():
        peer.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        peer.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        peer.out_proj.weight.copy_(ours.out_proj.weight)
        peer.out_proj.bias.copy_(ours.out_proj.bias)
    return peer


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_attention_matches_torch_multihead_attention(dtype, tol):
    torch.manual_seed(0)
    d, heads, b, t = 32, 4, 5, 11
    ours = bm.MultiHeadSelfAttention(d, heads).double().eval()
    peer = _peer(ours, d, heads).eval()
    ours, peer = ours.to(dtype), peer.to(dtype)
    x = torch.randn(b, t, d, dtype=dtype)
    # key_padding_mask: True = ignore this key, the nn.MultiheadAttention convention. Each row keeps
    # at least one key; row 0 ignores nothing.
    mask = torch.rand(b, t) < 0.4
    mask[:, 0] = False
    mask[0] = False
    with torch.no_grad():
        expected, _ = peer(x, x, x, need_weights=False)
        torch.testing.assert_close(ours(x), expected, atol=tol, rtol=tol)
        expected_masked, _ = peer(x, x, x, key_padding_mask=mask, need_weights=False)
        got_masked = ours(x, key_padding_mask=mask)
    torch.testing.assert_close(got_masked, expected_masked, atol=tol, rtol=tol)
    assert not torch.allclose(got_masked[1:], ours(x)[1:])  # the mask did something
    # A masked key changes nothing: perturbing it leaves every output alone.
    x2 = x.clone()
    x2[mask] += 10.0
    with torch.no_grad():
        kept = ~mask
        torch.testing.assert_close(ours(x2, key_padding_mask=mask)[kept], got_masked[kept], atol=tol, rtol=tol)


def test_modality_embeddings_break_permutation_symmetry():
    """Without type embeddings, swapping the image and audio inputs would be invisible when the
    tokenizers coincide; with them the model tells the two apart."""
    torch.manual_seed(0)
    cfg = bm.Config(image_tokens=2, audio_tokens=2, dropout=0.0, image_encoder="mlp", readout="cls")
    model = bm.AttentionFusion(cfg, mc.VOCAB_SIZE, mc.TEXT_LEN, 10).eval()
    model.tokens.audio.load_state_dict(model.tokens.image.state_dict())  # identical tokenizers
    a, b = torch.rand(3, 8, 8), torch.rand(3, 64)
    text = torch.full((3, mc.TEXT_LEN), mc.FILLER_START)
    with torch.no_grad():
        out = model(a, b, text)
        swapped = model(b.view(3, 8, 8), a.view(3, 64), text)
        assert not torch.allclose(out, swapped, atol=1e-4)
        model.type_emb.weight.zero_()
        torch.testing.assert_close(model(a, b, text), model(b.view(3, 8, 8), a.view(3, 64), text), atol=1e-5, rtol=1e-5)


def test_unimodal_model_ignores_the_masked_modalities(select_problem):
    torch.manual_seed(0)
    model = bm.AttentionFusion(bm.Config(modalities=("image",)), mc.VOCAB_SIZE, mc.TEXT_LEN, 10).eval()
    tr = select_problem.train
    image = torch.as_tensor(tr["image"][:16])
    audio, text = torch.as_tensor(tr["audio"][:16]), torch.as_tensor(tr["text"][:16])
    with torch.no_grad():
        torch.testing.assert_close(model(image, audio, text), model(image, torch.randn_like(audio), text.flip(1)))


# ---------------------------------------------------------------- data
def test_image_pools_are_disjoint_and_train_sees_no_test_example(select_problem):
    p = select_problem
    h = p.heldout
    assert set(p.train) == {"image", "audio", "text", "label"}  # no per-modality classes for the method
    assert len(p.train["label"]) == mc.N_TRAIN and len(h["label"]) == mc.N_TEST
    assert not set(h["train_pool"]) & set(h["test_pool"])
    assert len(h["train_pool"]) + len(h["test_pool"]) == 1800
    train_images = {im.tobytes() for im in p.train["image"]}
    test_images = {im.tobytes() for im in h["image"]}
    assert not train_images & test_images  # no test image appears among the method's images
    assert not {a.tobytes() for a in p.train["audio"]} & {a.tobytes() for a in h["audio"]}
    assert set(np.unique(h["image_index"])) <= set(h["test_pool"])


def test_select_label_follows_the_instruction_token(select_problem):
    h = select_problem.heldout
    is_img = (h["text"] == mc.TOKENS["IMG"]).any(1)
    is_aud = (h["text"] == mc.TOKENS["AUD"]).any(1)
    assert np.all(is_img ^ is_aud)  # exactly one instruction, IMG or AUD
    assert np.all((h["text"] == mc.TOKENS["IMG"]).sum(1) + (h["text"] == mc.TOKENS["AUD"]).sum(1) == 1)
    assert np.array_equal(h["label"][is_img], h["digit"][is_img])
    assert np.array_equal(h["label"][is_aud], h["audio_class"][is_aud])
    assert 0.45 < is_img.mean() < 0.55
    # The instruction sits anywhere: every position is used.
    pos = np.argmax((h["text"] == mc.TOKENS["IMG"]) | (h["text"] == mc.TOKENS["AUD"]), axis=1)
    assert set(pos) == set(range(mc.TEXT_LEN))


def test_synergy_label_is_independent_of_each_single_modality(synergy_problem):
    h = synergy_problem.heldout
    assert np.array_equal(h["label"], (h["digit"] + h["audio_class"]) % 10)
    assert np.all((h["text"] == mc.TOKENS["SUM"]).sum(1) == 1)
    # Given the digit (or the audio class), the label is uniform over 10 classes: a chi-squared
    # test of independence on the 10 × 10 contingency table does not reject (while it rejects
    # hard for the pair that does determine the label, as a check that the test has power).
    from scipy.stats import chi2_contingency

    def table(a, b):
        return np.histogram2d(a, b, bins=10, range=[[-0.5, 9.5], [-0.5, 9.5]])[0]

    for given in ("digit", "audio_class"):
        assert chi2_contingency(table(h[given], h["label"])).pvalue > 1e-3, given
    assert chi2_contingency(table((h["digit"] + h["audio_class"]) % 10, h["label"])).pvalue < 1e-10
    # And the best one-modality predictor (majority label per value) is at chance on fresh data.
    fresh = tm.MultimodalTask().build(variant="synergy", seed=1, budget=None, seal=Seal(1)).heldout
    for given in ("digit", "audio_class"):
        table = np.array([np.bincount(h["label"][h[given] == v], minlength=10).argmax() for v in range(10)])
        assert np.mean(table[fresh[given]] == fresh["label"]) < 0.15


def test_audio_frequency_encodes_the_class(select_problem):
    h = select_problem.heldout
    peak = np.abs(np.fft.rfft(h["audio"], axis=1))[:, 1:20].argmax(1) + 1  # cycles per window
    assert np.mean(peak - 2 == h["tone_map"][h["audio_class"]]) > 0.85
    assert sorted(h["tone_map"]) == list(range(10))


def test_build_is_deterministic_per_seed():
    task = tm.MultimodalTask()
    a = task.build(variant="select", seed=4, budget=None, seal=Seal(4))
    b = task.build(variant="select", seed=4, budget=None, seal=Seal(4))
    c = task.build(variant="select", seed=5, budget=None, seal=Seal(5))
    assert all(np.array_equal(a.train[k], b.train[k]) for k in a.train)
    assert not np.array_equal(a.heldout["test_pool"], c.heldout["test_pool"])


def test_evaluate_scores_an_oracle_and_a_constant(select_problem):
    h = select_problem.heldout

    class Oracle:
        def predict(self, image, audio, text):
            return h["label"]

    class Constant:
        def predict(self, image, audio, text):
            return np.zeros(len(image), dtype=int)

    task = tm.MultimodalTask()
    cpu = get_profile("cpu")
    assert task.evaluate(LocalSolution(Oracle()), select_problem, cpu) == {"accuracy": 1.0, "macro_f1": 1.0}
    m = task.evaluate(LocalSolution(Constant()), select_problem, cpu)
    assert m["accuracy"] == pytest.approx(np.mean(h["label"] == 0)) and m["macro_f1"] < 0.05


def test_evaluate_refuses_malformed_predictions(select_problem):
    task, cpu, n = tm.MultimodalTask(), get_profile("cpu"), mc.N_TEST

    class Returns:
        def __init__(self, value):
            self.value = value

        def predict(self, image, audio, text):
            return self.value

    m = task.evaluate(LocalSolution(Returns(select_problem.heldout["label"].astype(np.float32))), select_problem, cpu)
    assert m["accuracy"] == 1.0  # integral floats are labels
    for bad, err, match in [(np.full(n, np.nan), ValueError, "NaN"), (np.full(n, np.inf), ValueError, "NaN"),
                            (np.full(n, 0.5), ValueError, "non-integer"), (np.zeros(n - 1), ValueError, "shape"),
                            (np.array(["1"] * n), TypeError, "integer")]:
        with pytest.raises(err, match=match):
            task.evaluate(LocalSolution(Returns(bad)), select_problem, cpu)


def test_images_are_sealed_glyphs_and_two_keys_give_different_data():
    """The images are the seal's glyph digits (their labels the glyphs' sealed labels), the tones the
    seal's permutation; the same key gives the same triples bit for bit, another key other ones
    (the training stream 2 stays public: only its images and tones come from the seal)."""
    from advbench.glyphs import glyph_digits

    seed, task = 3, tm.MultimodalTask()
    plain = task.build(variant="select", seed=seed, budget=None, seal=Seal(seed))
    glyphs = glyph_digits(Seal(seed), images=True)
    h = plain.heldout
    assert np.array_equal(h["image"], glyphs.x[h["image_index"], 0])
    assert np.array_equal(h["digit"], glyphs.y[h["image_index"]])
    assert np.array_equal(h["tone_map"], tm.tone_map(Seal(seed)))

    sealed = task.build(variant="select", seed=seed, budget=None, seal=Seal(seed, key=KEY))
    again = task.build(variant="select", seed=seed, budget=None, seal=Seal(seed, key=KEY))
    other = task.build(variant="select", seed=seed, budget=None, seal=Seal(seed, key=KEY + b"2"))
    for k in ("image", "audio", "text", "label", "test_pool", "tone_map"):
        assert np.array_equal(sealed.heldout[k], again.heldout[k]), k
    for k in ("image", "audio", "text", "label"):
        assert not np.array_equal(sealed.heldout[k], plain.heldout[k]), k
        assert not np.array_equal(sealed.heldout[k], other.heldout[k]), k
    assert not np.array_equal(sealed.train["image"], plain.train["image"])
    assert not {im.tobytes() for im in sealed.train["image"]} & {im.tobytes() for im in sealed.heldout["image"]}
    assert 0.45 < (sealed.heldout["instruction"] == mc.TOKENS["IMG"]).mean() < 0.55


def test_public_lookup_scores_at_chance():
    """A method holding scikit-learn's public digits and the public tone rule of version 1 (class a
    at 2 + a cycles) answers every held-out triple by lookup: each image's nearest public digit and
    each tone's FFT peak. Under the seal both are at chance: the glyphs' labels and the tones are
    the seal's, and no held-out image is a public one."""
    from sklearn.datasets import load_digits

    d = load_digits()
    public, public_label = d.data / 16.0, d.target
    h = tm.MultimodalTask().build(variant="select", seed=0, budget=None, seal=Seal(0, key=KEY)).heldout
    x = h["image"].reshape(len(h["image"]), -1)
    dist = (x**2).sum(1)[:, None] - 2 * x @ public.T + (public**2).sum(1)[None]
    looked_up_digit = public_label[dist.argmin(1)]
    peak = np.abs(np.fft.rfft(h["audio"], axis=1))[:, 1:20].argmax(1) + 1
    looked_up_tone = np.clip(peak - 2, 0, 9)
    is_img = h["instruction"] == mc.TOKENS["IMG"]
    answer = np.where(is_img, looked_up_digit, looked_up_tone)
    assert np.mean(answer == h["label"]) < 0.2
    assert np.min(dist.min(1)) > 0.1  # no held-out image is (near) a public digit


def test_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    p[:200] = y[:200]
    assert tm.macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))


# ---------------------------------------------------------------- harness
@pytest.mark.slow
def test_quick_target_select(tmp_path):
    from advbench.runner import run

    rec = run("multimodal", "reference", budget="quick", variant="select", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok" and rec["targets_met"], rec["metrics"]


@pytest.mark.slow
def test_image_only_is_at_chance_on_synergy(synergy_problem):
    """Unimodal ablation, negative control: the image alone says nothing about (digit + tone) mod 10."""

    class Ctx:
        seed, device, limits = 0, "cpu", {"epochs": 4}

        def record_config(self, **kw): ...
        def count(self, n): ...
        def progress(self, done, total): ...
        def checkpoint(self, solution, step=None): ...

    solution = bm.image_only(synergy_problem.train, Ctx())
    m = tm.MultimodalTask().evaluate(LocalSolution(solution), synergy_problem, get_profile("cpu"))
    assert m["accuracy"] <= 0.15, m
