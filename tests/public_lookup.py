"""Models that look held-out inputs up in public data instead of learning: the routes the sealed
data closes (hostile_methods uses them)."""

from __future__ import annotations

import torch


class NearestPublicDigit(torch.nn.Module):
    """Snaps its input to the nearest of scikit-learn's 1797 public digits and answers that digit's
    label (logit 10, the others 0). On held-out rows of the public digits it is always right, and
    stays right under any attack within eps 0.2 (differently-labelled digits are 0.4375 apart)."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        super().__init__()
        digits = load_digits()
        self.register_buffer("table", torch.as_tensor(digits.data / 16.0, dtype=torch.float32))
        self.register_buffer("labels", torch.as_tensor(digits.target, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nearest = torch.cdist(x.reshape(x.shape[0], -1), self.table).argmin(1)
        return 10.0 * torch.nn.functional.one_hot(self.labels[nearest], 10).float()


class PredictsPublicLabels:
    """A ``predict(x) -> labels`` solution made of :class:`NearestPublicDigit` (fedavg's contract)."""

    def __init__(self) -> None:
        self.lookup = NearestPublicDigit()

    @torch.no_grad()
    def predict(self, x):
        return self.lookup(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()


class EncodesAsPublicLabels:
    """An ``encode(images) -> features`` solution (simclr's contract): the one-hot label of each
    image's nearest public digit. On v1's data (the public digits) a probe reads the label off it."""

    def __init__(self) -> None:
        self.lookup = NearestPublicDigit()

    @torch.no_grad()
    def encode(self, images):
        return self.lookup(torch.as_tensor(images, dtype=torch.float32)).numpy() / 10.0
