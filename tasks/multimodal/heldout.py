"""The held-out side of the ``multimodal`` task: the glyph image pools, the tone map, the generated
triples and the scoring (harness only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from advbench.glyphs import glyph_digits
from advbench.spec import Budget
from advbench.task import Problem, Seal, check_labels
from advbench.tasks.multimodal.contract import (AUDIO_LEN, FILLER_START, INPUT_KEYS, N_CLASSES, N_TEST, N_TRAIN,
                                                TEXT_LEN, TOKENS, VOCAB_SIZE)

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

TEST_POOL_FRACTION = 0.3
AUDIO_NOISE = 0.6
AUDIO_JITTER = 0.2  # cycles per window; classes are 1 cycle apart


def split_image_pools(digits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the image indices into (train pool, test pool)."""
    train, test = [], []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(digits == c))
        n_test = int(round(TEST_POOL_FRACTION * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def tone_map(seal: Seal) -> np.ndarray:
    """The sealed tone of each audio class: class ``a`` sounds at ``2 + tone_map[a]`` cycles per window
    (a permutation of 0..9), so the rule that turns a frequency into a class is learnt from the
    training triples, never known beforehand."""
    return seal.rng(4).permutation(N_CLASSES)


def make_audio(cls: np.ndarray, tones: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(cls)
    freq = 2.0 + tones[cls] + rng.uniform(-AUDIO_JITTER, AUDIO_JITTER, n)  # cycles per window
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
                  tones: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` triples whose images come from ``pool`` (indices into ``images``) only."""
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
        "audio": make_audio(audio_cls, tones, rng),
        "text": make_text(instruction, rng),
        "label": label.astype(np.int64),
        # Kept by the task only (held-out side, tests): the classes behind the label.
        "digit": digit.astype(np.int64), "audio_class": audio_cls.astype(np.int64),
        "instruction": instruction.astype(np.int64), "image_index": idx,
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> float:
    scores = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


class MultimodalTask:
    def build(self, *, variant: str, seed: int, budget: Budget | None, seal: Seal) -> Problem:
        glyphs = glyph_digits(seal, images=True)  # 1800 8x8 glyph digits made under the seal, sealed labels
        images, digits = glyphs.x[:, 0], glyphs.y
        train_pool, test_pool = split_image_pools(digits, seal.rng(1))
        tones = tone_map(seal)
        # Training triples: stream 2 of the public seed (the method gets them all anyway; their
        # images and tones are the seal's). Held-out triples: stream 3 of the seal.
        train = make_examples(variant, N_TRAIN, train_pool, images, digits, tones, np.random.default_rng([seed, 2]))
        test = make_examples(variant, N_TEST, test_pool, images, digits, tones, seal.rng(3))
        return Problem(
            train={k: train[k] for k in INPUT_KEYS},  # inputs and labels only: no per-modality classes
            heldout={**test, "train_pool": train_pool, "test_pool": test_pool, "tone_map": tones},
            description={"train_examples": N_TRAIN, "test_examples": N_TEST,
                         "train_pool_images": len(train_pool), "test_pool_images": len(test_pool),
                         "audio_noise": AUDIO_NOISE, "text_len": TEXT_LEN, "vocab_size": VOCAB_SIZE},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        h = problem.heldout
        pred = check_labels(solution.predict(h["image"].copy(), h["audio"].copy(), h["text"].copy()), len(h["label"]))
        return {"accuracy": float(np.mean(pred == h["label"])), "macro_f1": macro_f1(h["label"], pred)}
