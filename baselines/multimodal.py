"""Attention fusion of image, audio and text (and its ablations), written out in torch, CleanRL-style.

Every modality becomes a few d-dimensional tokens:

* image (8×8 glyph digit): two 3×3 convolutions and a 2×2 max-pool, linearly mapped to
  ``image_tokens`` tokens (version 1's MLP on the pixels reached 0.946 on the glyphs alone against
  the convolutions' 0.981, and capped the synergy score: see ``Config.image_encoder``);
* audio (64 samples): a small MLP on the whole signal whose output is cut into ``audio_tokens``
  tokens (a tone is a global pattern: its frequency under random phase is not readable from a
  short chunk by a linear patch embedding);
* text: the mean of the token embeddings, one bag-of-words token (the instruction can sit anywhere
  and its position means nothing; ``text_bag=False`` gives one token per word plus a position
  embedding instead).

Reference (``attention_fusion``): a learned CLS token is prepended, a modality-type embedding
(CLS / image / audio / text) is added to every token — without it self-attention is permutation
invariant and could not tell an image token from an audio token — and ``n_layers`` pre-norm
transformer blocks with explicit multi-head self-attention (``MultiHeadSelfAttention``, checked
against ``torch.nn.MultiheadAttention`` in ``tests/test_multimodal.py``) mix the sequence
``[CLS, image tokens, audio tokens, text tokens]``. An MLP head on the final states of all tokens,
side by side, classifies (``Config.readout``: version 1 read the CLS state only).

Ablations: ``image_only`` / ``audio_only`` / ``text_only`` are the same model with the other
modalities' tokens removed through ``key_padding_mask`` (True = ignore, the convention of
``nn.MultiheadAttention``), so nothing about them can reach the CLS token; ``concat_fusion`` is late
fusion: the same tokenizers, image and audio tokens flattened, text tokens averaged, concatenated,
and an MLP.

Why these settings: calibration with one attention layer, no CLS token (mean pooling) and a constant
learning rate reached only 0.80 on ``synergy``, where the label is (digit + tone) mod 10 and the
model has to combine the two class identities non-linearly. Here: a CLS token (a dedicated place to
gather both), two pre-norm layers (the second acts on already fused states), an MLP head (256) on
the CLS state, AdamW with warm-up and cosine decay, dropout 0.2 and weight decay 0.05. Measured on
CPU, one thread, 40 epochs (the full budget; final numbers in the task docstring, through
``advbench.runner.run``; the tried-and-dropped settings here with the same training loop):

* seed 0, linear head: with dropout 0.1 / weight decay 0.01 the attention model fits the training
  set (1.0) and reaches 0.87 on ``synergy``; with 0.2 / 0.05, 0.92 (0.89 at epoch 16);
* that was seed 0 only: on seed 1 the same model (linear head) fitted the training set and stalled
  at 0.21, and 0.23 with the text as one bag-of-words token; wider blocks (d 128, MLP ×4) were at
  chance after 8 epochs. A 256-wide MLP head on the CLS state (the non-linear room that the concat
  MLP has and a 64-dim CLS state with a linear read-out lacks, for a label that is a mod-10 sum of
  two class identities) took seed 1 to 0.89 at epoch 16 and 0.93 at epoch 24;
* random 1-pixel image shifts (``shift_px=1``) kept it at chance for 36 of 60 epochs: the synergy
  model sits on a chance plateau for its first epochs (0.32 at epoch 8) until digit and tone
  features emerge together, and the augmentation delays that escape, so it is off by default;
* concat fusion flattening the text tokens memorised the random filler ids (train 1.0, synergy
  0.12); averaging the text tokens fixed it (0.96).

Version 2 of the task (glyph images, sealed tones), sealed seeds of one key, full budget: the
convolutional image tokenizer took unsealed seed 0 from 0.916 to 0.942, but with the head on the
CLS state alone sealed seed 0 never left the chance plateau (0.12 / 0.20 / 0.30 / 0.33 / 0.34 at
epochs 8-40), the failure the seed-1 bullet above describes. Reading every token's final state
(``readout="tokens"``, the head's input 640 wide instead of 64) gives the head the per-modality
features that concat's MLP has, after attention has mixed them: sealed seeds 0 / 1 / 2 reached
0.988 / 0.967 / 0.965 (0.967 / 0.884 / 0.938 at epoch 16).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advbench.tasks.multimodal.contract import N_CLASSES, TEXT_LEN, VOCAB_SIZE

MODALITIES = ("image", "audio", "text")


@dataclass
class Config:
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ffn_mult: int = 2
    image_tokens: int = 4
    audio_tokens: int = 4
    encoder_hidden: int = 256  # hidden width of the audio MLP tokenizer (and of the image one, with "mlp")
    # The image tokenizer: "conv" (two 3x3 convolutions, a 2x2 max-pool, a linear map to the tokens)
    # or "mlp" (as the audio one). On the glyph digits the MLP was the bottleneck: alone, trained on
    # a training pool's images, 0.946 test accuracy against the convolutions' 0.981 (seed 0), and
    # the synergy reference stopped at 0.916 with it.
    image_encoder: str = "conv"
    conv_channels: tuple[int, int] = (32, 64)
    dropout: float = 0.2  # 0.1 / wd 0.01: train 1.0, synergy 0.87 after 40 epochs; 0.2 / 0.05: 0.92 by epoch 24
    lr: float = 2e-3
    weight_decay: float = 5e-2
    warmup_epochs: int = 2
    batch_size: int = 128
    epochs: int = 40  # overridden by the budget
    label_smoothing: float = 0.0
    # Random pixel shifts of training images (off by default): with 1 px the synergy model was still
    # at chance after 36 of 60 epochs, its escape from the chance plateau delayed past the budget.
    shift_px: int = 0
    concat_hidden: int = 256  # late-fusion MLP width
    head_hidden: int = 256  # attention model: the MLP head's width (0 = linear head): see the docstring
    # What the attention model's head reads: "tokens" (every token's final state side by side, those
    # of unseen modalities zeroed) or "cls" (the CLS token's final state only). With "cls" the
    # synergy model stayed on its chance plateau on sealed seed 0 (0.344 after 40 epochs; glyph
    # images); with "tokens" it left it by epoch 16 on sealed seeds 0-2: see the docstring.
    readout: str = "tokens"
    # Text as one bag-of-words token (mean of the token embeddings) instead of 8 tokens: see the docstring.
    text_bag: bool = True
    modalities: tuple[str, ...] = field(default_factory=lambda: MODALITIES)
    checkpoints: int = 5  # how many times to hand the model to the harness (learning curve)


# ---------------------------------------------------------------- attention, written out
class MultiHeadSelfAttention(nn.Module):
    """softmax(Q Kᵀ / √d_head) V per head, heads split with view + transpose, then an output projection.

    ``key_padding_mask`` (B, T) follows ``nn.MultiheadAttention``: True marks a key to *ignore*
    (``F.scaled_dot_product_attention``'s boolean mask means the opposite: True = attend).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        assert d_model % n_heads == 0
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape

        def heads(z: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H)
            return z.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H, T, T)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = F.dropout(scores.softmax(dim=-1), self.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(b, t, d)  # heads back side by side
        return self.out_proj(out)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN x), then x + MLP(LN x)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadSelfAttention(d, cfg.n_heads, cfg.dropout)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.ffn_mult * d), nn.GELU(), nn.Linear(cfg.ffn_mult * d, d),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_padding_mask)
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------- tokenizers
class Tokenizers(nn.Module):
    """image, audio, text -> (B, T_image + T_audio + T_text, d) and each token's modality (0, 1, 2)."""

    def __init__(self, cfg: Config, vocab_size: int, text_len: int) -> None:
        super().__init__()
        d, hid = cfg.d_model, cfg.encoder_hidden
        self.bag = cfg.text_bag
        self.n_img, self.n_aud, self.n_txt = cfg.image_tokens, cfg.audio_tokens, 1 if cfg.text_bag else text_len
        if cfg.image_encoder == "conv":
            c1, c2 = cfg.conv_channels
            self.image = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, c1, 3, padding=1), nn.GELU(),
                                       nn.Conv2d(c1, c2, 3, padding=1), nn.GELU(), nn.MaxPool2d(2), nn.Flatten(),
                                       nn.Linear(c2 * 16, cfg.image_tokens * d))
        elif cfg.image_encoder == "mlp":
            self.image = nn.Sequential(nn.Linear(64, hid), nn.GELU(), nn.Linear(hid, cfg.image_tokens * d))
        else:
            raise ValueError(f"image_encoder is 'conv' or 'mlp', not {cfg.image_encoder!r}")
        self.audio = nn.Sequential(nn.Linear(64, hid), nn.GELU(), nn.Linear(hid, cfg.audio_tokens * d))
        self.text = nn.Embedding(vocab_size, d)
        self.text_pos = nn.Parameter(torch.randn(text_len, d) * 0.02)
        self.register_buffer("modality", torch.tensor([0] * self.n_img + [1] * self.n_aud + [2] * self.n_txt))

    def forward(self, image: torch.Tensor, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b = image.size(0)
        img = self.image(image.reshape(b, -1)).view(b, self.n_img, -1)
        aud = self.audio(audio).view(b, self.n_aud, -1)
        txt = self.text(text).mean(1, keepdim=True) if self.bag else self.text(text) + self.text_pos
        return torch.cat([img, aud, txt], dim=1)


class AttentionFusion(nn.Module):
    def __init__(self, cfg: Config, vocab_size: int, text_len: int, n_classes: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.tokens = Tokenizers(cfg, vocab_size, text_len)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.type_emb = nn.Embedding(1 + len(MODALITIES), d)  # 0 = CLS, 1.. = image, audio, text
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln = nn.LayerNorm(d)
        if cfg.readout not in ("cls", "tokens"):
            raise ValueError(f"readout is 'cls' or 'tokens', not {cfg.readout!r}")
        self.readout = cfg.readout
        d_in = d if cfg.readout == "cls" else d * (1 + len(self.tokens.modality))
        self.head = (nn.Linear(d_in, n_classes) if not cfg.head_hidden else
                     nn.Sequential(nn.Linear(d_in, cfg.head_hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                   nn.Linear(cfg.head_hidden, n_classes)))
        # Which modalities this model may see: the others are masked out of every attention.
        keep = torch.tensor([m in cfg.modalities for m in MODALITIES])
        self.register_buffer("ignore", torch.cat([torch.zeros(1, dtype=torch.bool), ~keep[self.tokens.modality]]))

    def forward(self, image: torch.Tensor, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = self.tokens(image, audio, text)
        x = torch.cat([self.cls.expand(x.size(0), -1, -1), x], dim=1)
        types = torch.cat([torch.zeros(1, dtype=torch.long, device=x.device), self.tokens.modality + 1])
        x = x + self.type_emb(types)
        mask = self.ignore.expand(x.size(0), -1) if self.ignore.any() else None
        for block in self.blocks:
            x = block(x, mask)
        if self.readout == "cls":
            return self.head(self.ln(x[:, 0]))  # the CLS token's final state
        return self.head((self.ln(x) * ~self.ignore[None, :, None]).flatten(1))


class ConcatFusion(nn.Module):
    """Late fusion: the same tokenizers, one vector per modality, concatenated, then an MLP.

    Image and audio tokens are flattened; the text tokens are averaged (a bag of words). Flattening
    the text too would hand the MLP seven random filler ids per example, a fingerprint it uses to
    memorise the training set (train 1.0, held-out synergy 0.12 when tried).
    """

    def __init__(self, cfg: Config, vocab_size: int, text_len: int, n_classes: int) -> None:
        super().__init__()
        self.tokens = Tokenizers(cfg, vocab_size, text_len)
        self.n_av = cfg.image_tokens + cfg.audio_tokens
        n = (self.n_av + 1) * cfg.d_model  # with text_bag the one text token is already the mean
        self.mlp = nn.Sequential(nn.LayerNorm(n), nn.Linear(n, cfg.concat_hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.concat_hidden, cfg.concat_hidden), nn.GELU(),
                                 nn.Linear(cfg.concat_hidden, n_classes))

    def forward(self, image: torch.Tensor, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = self.tokens(image, audio, text)
        return self.mlp(torch.cat([x[:, :self.n_av].flatten(1), x[:, self.n_av:].mean(1)], dim=1))


# ---------------------------------------------------------------- the solution
class Predictor:
    """The solution: ``predict(image, audio, text) -> labels``; modalities a model may not see are zeroed."""

    def __init__(self, model: nn.Module, modalities: tuple[str, ...], device: str) -> None:
        self.model, self.modalities, self.device = model, modalities, device

    def _inputs(self, image: np.ndarray, audio: np.ndarray, text: np.ndarray) -> list[torch.Tensor]:
        arrays = {"image": np.asarray(image, np.float32), "audio": np.asarray(audio, np.float32),
                  "text": np.asarray(text, np.int64)}
        return [torch.as_tensor(a if m in self.modalities else np.zeros_like(a), device=self.device)
                for m, a in arrays.items()]

    @torch.no_grad()
    def predict(self, image: np.ndarray, audio: np.ndarray, text: np.ndarray) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        x = self._inputs(image, audio, text)
        out = [self.model(*(t[i:i + 1024] for t in x)).argmax(1).cpu() for i in range(0, len(x[0]), 1024)]
        self.model.train(was_training)
        return torch.cat(out).numpy()


# ---------------------------------------------------------------- training loop
def shift_images(x: torch.Tensor, max_px: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each (B, 8, 8) image by a random whole number of pixels in [-max_px, max_px], zero fill."""
    if max_px <= 0:
        return x
    b, h, w = x.shape
    padded = F.pad(x, (max_px, max_px, max_px, max_px))
    dy, dx = torch.randint(0, 2 * max_px + 1, (2, b), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return padded[torch.arange(b, device=x.device)[:, None, None], rows, cols]


def _fit(data: dict, ctx, model_cls: type[nn.Module], modalities: tuple[str, ...]) -> Predictor:
    cfg = Config(epochs=int(ctx.limits["epochs"]), modalities=modalities)
    ctx.record_config(model=model_cls.__name__, **asdict(cfg))
    torch.manual_seed(ctx.seed)
    model = model_cls(cfg, VOCAB_SIZE, TEXT_LEN, N_CLASSES).to(ctx.device)
    solution = Predictor(model, modalities, ctx.device)
    image, audio, text = solution._inputs(data["image"], data["audio"], data["text"])
    label = torch.as_tensor(data["label"], device=ctx.device)
    n = len(label)

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(ctx.seed)
    every = max(1, -(-cfg.epochs // cfg.checkpoints))  # ceil: at most `checkpoints` checkpoints
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(ctx.device)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            logits = model(shift_images(image[idx], cfg.shift_px, gen), audio[idx], text[idx])
            loss = F.cross_entropy(logits, label[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ctx.count(len(idx))
        ctx.progress(epoch, cfg.epochs)
        if epoch % every == 0 or epoch == cfg.epochs:
            ctx.checkpoint(solution, step=epoch)
    train_acc = float(np.mean(solution.predict(data["image"], data["audio"], data["text"]) == data["label"]))
    ctx.record_config(final_train_accuracy=train_acc)
    return solution


# ---------------------------------------------------------------- methods
def attention_fusion(data: dict, ctx) -> Predictor:
    """Reference: CLS + modality-type embeddings + multi-head self-attention over all tokens."""
    return _fit(data, ctx, AttentionFusion, MODALITIES)


def concat_fusion(data: dict, ctx) -> Predictor:
    """Late fusion by concatenation and an MLP."""
    return _fit(data, ctx, ConcatFusion, MODALITIES)


def image_only(data: dict, ctx) -> Predictor:
    """Unimodal ablation (and the floor): the reference model seeing the image only."""
    return _fit(data, ctx, AttentionFusion, ("image",))


def audio_only(data: dict, ctx) -> Predictor:
    return _fit(data, ctx, AttentionFusion, ("audio",))


def text_only(data: dict, ctx) -> Predictor:
    return _fit(data, ctx, AttentionFusion, ("text",))
