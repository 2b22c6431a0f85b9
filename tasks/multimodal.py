"""multimodal — fusing image, audio and text, where the label needs more than one modality.

No multimodal data set ships offline, so the task builds one whose label depends on cross-modal
interaction, in the spirit of Liang et al. (2023, "Quantifying & modeling multimodal interactions"):
every example is a triple

* image: an 8×8 digit from scikit-learn's bundled ``load_digits`` (pixels scaled to [0, 1]);
* audio: 64 samples of a noisy sinusoid, ``A sin(2π f t / 64 + φ) + N(0, 0.6²)``, whose frequency
  ``f = 2 + a ± 0.2`` cycles per window encodes a second class ``a`` in 0..9 (random amplitude
  ``A ~ U(0.5, 1.5)``, random phase ``φ``, so no single sample is informative);
* text: 8 token ids, one instruction token (IMG, AUD or SUM) at a random position among 7 filler
  tokens drawn from 16 meaningless ones.

The digit and the audio class are drawn independently and uniformly. Variants:

* ``select``: the instruction is IMG or AUD (half each); label = the digit if IMG, else the audio
  class. Each modality alone is worth about half: image only ≈ 0.54, audio only ≈ 0.55.
* ``synergy``: the instruction is always SUM; label = (digit + audio class) mod 10. Given any single
  modality the label is uniform, so every unimodal model sits at chance (0.1): only fusion helps.

The load_digits *images* are split into a training pool (70 %) and a test pool (30 %, stratified by
digit, by the run seed) *before* any example is made: the 6000 training triples use training-pool
images only and the 2000 held-out triples test-pool images only. (Sampling triples first and then
splitting would reuse the same digit images on both sides and let a model memorise them.)

The method receives ``Problem.train``, a dict of numpy arrays ``image float32 (N, 8, 8)``, ``audio
float32 (N, 64)``, ``text int64 (N, 8)`` and ``label int64 (N,)``; it never sees the held-out
triples nor the per-modality classes (digit, audio class) behind the labels.

Solution: any object with ``predict(image, audio, text) -> int array (N,)`` on arrays shaped as
above. Metrics: accuracy (primary) and macro-F1 on the 2000 held-out triples.

Methods (``baselines/multimodal.py``): the reference fuses by multi-head self-attention over
modality tokens; ``concat`` is late fusion by concatenation and an MLP; the image-only model
(registered as ``floor``), ``audio-only`` and ``text-only`` are the reference architecture with the
other modalities' tokens masked out, the unimodal ablations the leaderboard shows beside the fusion
rows. The floor is the image-only model, the best unimodal model on ``select``.

Targets: quick select >= 0.90; full select >= 0.97 and synergy >= 0.90. That unimodal models stay at
chance on synergy (<= 0.15) is a property of the data, not a bar for a method, so it is a test
(``tests/test_multimodal.py``), not a target.

Calibration proposed: select — image only 0.54, audio only 0.50, concat 0.98, attention 0.98;
synergy — unimodal ≈ 0.10, concat 0.92, attention 0.80 (one layer, no schedule). Measured here
(seed 0 unless noted, CPU, one thread on a loaded two-core machine, full budget of 40 epochs,
through ``advbench.runner.run``; accuracy, training seconds):

============  ==============  ===========================================================
method        select          synergy
============  ==============  ===========================================================
reference     0.980, 126 s    0.947, 143 s (seed 1: 0.936, 168 s); 0.11 at epoch 8, 0.91 at 16
concat        0.977, 50 s     0.956, 54 s
image-only    0.552, 69 s     0.095 (chance, as built)
audio-only                    0.110 (training accuracy 0.94: it memorises the noise)
text-only                     0.098
============  ==============  ===========================================================

Quick (10 epochs of select): reference 0.975 in 18 s. The attention reference reaches the synergy
bar only with an MLP head on its CLS state and stronger regularisation than a first try (a linear
head stalled at 0.21 on seed 1): see ``baselines/multimodal.py``. It spends its first epochs on a
chance plateau before digit and tone features emerge together, so its time to target is minutes
where concat's is seconds.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

N_TRAIN = 6000
N_TEST = 2000
TEST_POOL_FRACTION = 0.3
N_CLASSES = 10
AUDIO_LEN = 64
AUDIO_NOISE = 0.6
AUDIO_JITTER = 0.2  # cycles per window; classes are 1 cycle apart
TEXT_LEN = 8
# Token ids. 0 is left unused (free for padding); fillers carry no information.
TOKENS = {"IMG": 1, "AUD": 2, "SUM": 3}
N_FILLERS = 16
FILLER_START = 4
VOCAB_SIZE = FILLER_START + N_FILLERS

SPEC = TaskSpec(
    name="multimodal",
    version=1,
    title="Multimodal fusion of image, audio and text (attention vs concatenation)",
    summary="Digit image + noisy tone + instruction tokens; the label needs the modalities together.",
    variants={
        "select": "text says IMG or AUD: label = the digit or the audio class (each modality alone ≈ 0.5)",
        "synergy": "label = (digit + audio class) mod 10: every single modality is at chance",
    },
    metrics=(
        Metric("accuracy", "fraction", True, "accuracy on 2000 held-out triples (test-pool images)"),
        Metric("macro_f1", "fraction", True, "macro-averaged F1 over the 10 labels, same triples"),
    ),
    primary_metric="accuracy",
    targets=(
        Target("accuracy", 0.90, "quick", "select"),
        Target("accuracy", 0.97, "full", "select"),
        Target("accuracy", 0.90, "full", "synergy"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=120, limits={"epochs": 10}, variants=("select",)),
        "full": Budget("full", max_seconds=600, limits={"epochs": 40}, variants=("select", "synergy")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="examples/s",
    entry_point="advbench.tasks.multimodal:MultimodalTask",
    solution="object with predict(image: float32[N, 8, 8], audio: float32[N, 64], text: int64[N, 8]) -> int[N]",
    data="generated from the run seed: load_digits images (pools split before sampling), synthetic tones and tokens",
    extras=("vision",),
)


class Classifier(Protocol):
    def predict(self, image: np.ndarray, audio: np.ndarray, text: np.ndarray) -> np.ndarray: ...


def split_image_pools(digits: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the load_digits indices into (train pool, test pool)."""
    rng = np.random.default_rng([seed, 1])
    train, test = [], []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(digits == c))
        n_test = int(round(TEST_POOL_FRACTION * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def make_audio(cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(cls)
    freq = 2.0 + cls + rng.uniform(-AUDIO_JITTER, AUDIO_JITTER, n)  # cycles per window
    amp = rng.uniform(0.5, 1.5, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(AUDIO_LEN) / AUDIO_LEN
    wave = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None] + phase[:, None])
    return (wave + rng.normal(0, AUDIO_NOISE, (n, AUDIO_LEN))).astype(np.float32)


def make_text(instruction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(instruction)
    text = rng.integers(FILLER_START, VOCAB_SIZE, (n, TEXT_LEN))
    text[np.arange(n), rng.integers(0, TEXT_LEN, n)] = instruction
    return text.astype(np.int64)


def make_examples(variant: str, n: int, pool: np.ndarray, images: np.ndarray, digits: np.ndarray,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` triples whose images come from ``pool`` (indices into load_digits) only."""
    idx = rng.choice(pool, n, replace=True)
    digit = digits[idx]
    audio_cls = rng.integers(0, N_CLASSES, n)
    if variant == "select":
        use_image = rng.random(n) < 0.5
        instruction = np.where(use_image, TOKENS["IMG"], TOKENS["AUD"])
        label = np.where(use_image, digit, audio_cls)
    elif variant == "synergy":
        instruction = np.full(n, TOKENS["SUM"])
        label = (digit + audio_cls) % N_CLASSES
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return {
        "image": images[idx].copy(),
        "audio": make_audio(audio_cls, rng),
        "text": make_text(instruction, rng),
        "label": label.astype(np.int64),
        # Kept by the task only (held-out side, tests): the classes behind the label.
        "digit": digit.astype(np.int64), "audio_class": audio_cls.astype(np.int64),
        "instruction": instruction.astype(np.int64), "image_index": idx,
    }


INPUT_KEYS = ("image", "audio", "text", "label")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> float:
    scores = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


class MultimodalTask:
    def build(self, *, variant: str, seed: int, budget: Budget | None) -> Problem:
        from sklearn.datasets import load_digits

        data = load_digits()
        images = (data.images / 16.0).astype(np.float32)
        digits = data.target.astype(np.int64)
        train_pool, test_pool = split_image_pools(digits, seed)
        train = make_examples(variant, N_TRAIN, train_pool, images, digits, np.random.default_rng([seed, 2]))
        test = make_examples(variant, N_TEST, test_pool, images, digits, np.random.default_rng([seed, 3]))
        return Problem(
            train={k: train[k] for k in INPUT_KEYS},  # inputs and labels only: no per-modality classes
            heldout={**test, "train_pool": train_pool, "test_pool": test_pool},
            description={"train_examples": N_TRAIN, "test_examples": N_TEST,
                         "train_pool_images": len(train_pool), "test_pool_images": len(test_pool),
                         "audio_noise": AUDIO_NOISE, "text_len": TEXT_LEN, "vocab_size": VOCAB_SIZE},
        )

    def evaluate(self, solution: Classifier, problem: Problem, profile: Any) -> dict[str, float]:
        h = problem.heldout
        pred = np.asarray(solution.predict(h["image"].copy(), h["audio"].copy(), h["text"].copy())).reshape(-1)
        if pred.shape != h["label"].shape:
            raise ValueError(f"predict returned shape {pred.shape}, expected {h['label'].shape}")
        pred = pred.astype(np.int64)
        return {"accuracy": float(np.mean(pred == h["label"])), "macro_f1": macro_f1(h["label"], pred)}
