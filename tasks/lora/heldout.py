"""The held-out side of ``lora``: the vocabulary and its polarities, the adjective split, the test sentences."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.task import Problem, Seal, check_labels
from advbench.tasks.lora.contract import SentimentData

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

VARIANTS = ("negation",)
HELD_OUT_PER_POLARITY = 10  # of 30 adjectives of each polarity, never seen in training
N_TRAIN = 2000
N_TEST = 1000
SCORE = "advbench.tasks.lora.contract:score_adapter"

# The vocabulary: adjectives with a clear polarity. Which of them are held out for testing is the
# harness's choice (from the seal); a method sees only the training sentences.
POSITIVE = ("good", "great", "excellent", "wonderful", "delightful", "superb", "pleasant", "brilliant",
            "charming", "lovely", "enjoyable", "fantastic", "marvelous", "terrific", "impressive",
            "beautiful", "fun", "satisfying", "amazing", "outstanding", "nice", "splendid", "fabulous",
            "admirable", "engaging", "heartwarming", "refreshing", "uplifting", "clever", "touching")
NEGATIVE = ("bad", "awful", "terrible", "horrible", "dreadful", "boring", "dull", "poor", "disappointing",
            "mediocre", "annoying", "unpleasant", "tedious", "lousy", "awkward", "clumsy", "painful",
            "miserable", "pathetic", "bland", "weak", "ugly", "messy", "shallow", "tiresome", "forgettable",
            "irritating", "depressing", "sloppy", "dismal")
NOUNS = ("film", "movie", "book", "meal", "show", "concert", "play", "hotel", "game", "album", "story",
         "service", "restaurant", "trip", "lecture", "product")
# {n}: noun, {a}: adjective. Each template has a plain and a negated form.
TEMPLATES = (
    ("the {n} was {a}.", "the {n} was not {a}."),
    ("the {n} is {a}.", "the {n} isn't {a}."),
    ("i found the {n} {a}.", "i did not find the {n} {a}."),
    ("this {n} is really {a}.", "this {n} is not really {a}."),
    ("honestly, the {n} was {a}.", "honestly, the {n} was never {a}."),
    ("everyone said the {n} was {a}.", "nobody said the {n} was {a}."),
    ("what a {a} {n}.", "what a {n}, and not {a} at all."),
    ("the {n} turned out {a}.", "the {n} did not turn out {a}."),
)


def make_sentence(rng: np.random.Generator, adjective: str, positive: bool) -> tuple[str, int, bool]:
    """One sentence about ``adjective``: (text, label, negated); label = polarity XOR negated."""
    noun = NOUNS[rng.integers(len(NOUNS))]
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    negated = bool(rng.integers(2))
    text = template[int(negated)].format(n=noun, a=adjective)
    return text, int(positive != negated), negated


def make_sentences(rng: np.random.Generator, adjectives: tuple[str, ...], n: int) -> SentimentData:
    """``n`` sentences over ``adjectives``, balanced between plain and negated, positive and negative."""
    texts, labels, negs = [], [], []
    for _ in range(n):
        adj = adjectives[rng.integers(len(adjectives))]
        text, label, neg = make_sentence(rng, adj, adj in POSITIVE)
        texts.append(text)
        labels.append(label)
        negs.append(neg)
    return SentimentData(tuple(texts), np.asarray(labels, np.int64), np.asarray(negs, bool))


def split_adjectives(rng: np.random.Generator) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training adjectives, held-out adjectives): ``HELD_OUT_PER_POLARITY`` of each polarity held out."""
    held = []
    for words in (POSITIVE, NEGATIVE):
        held += [words[i] for i in rng.choice(len(words), HELD_OUT_PER_POLARITY, replace=False)]
    train = tuple(w for w in POSITIVE + NEGATIVE if w not in held)
    return train, tuple(held)


class LoRATask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        train_adj, test_adj = split_adjectives(seal.rng(1))
        train = make_sentences(np.random.default_rng([seed, 2]), train_adj, N_TRAIN)
        test = make_sentences(seal.rng(3), test_adj, N_TEST)
        return Problem(
            train=train,
            heldout={"test": test},
            description={"variant": variant, "train": N_TRAIN, "test": N_TEST, "train_adjectives": len(train_adj),
                         "held_out_adjectives": len(test_adj), "templates": len(TEMPLATES),
                         "negated_share_test": float(test.negated.mean())},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        test: SentimentData = problem.heldout["test"]
        # The solution is its adapter, as data; the clean scoring process builds the classifier from
        # the pretrained MiniLM and the adapter, predicts, and counts the changed weights itself.
        scored = solution.compute(SCORE, solution.adapter(), list(test.texts))
        pred = check_labels(scored["pred"], len(test), 2)
        correct = pred == test.labels
        return {
            "accuracy": float(correct.mean()),
            "accuracy_negated": float(correct[test.negated].mean()),
            "accuracy_plain": float(correct[~test.negated].mean()),
            "trainable_fraction": int(scored["changed"]) / int(scored["total"]),
            "changed_parameters": float(scored["changed"]),
        }
