"""Data sets that several tasks share, loaded one way.

scikit-learn's ``load_digits`` (1797 8x8 greyscale digits, 10 classes; bundled in its wheel, nothing
is downloaded) backs many tasks. :func:`digits_split` loads it, scales pixels to [0, 1] and makes
the stratified train/test split whose ``random_state`` comes from the run's seal (the seed itself
when unsealed), so every task that splits digits splits it the same way for the same seed.
:func:`class_gaussian_rows` draws new rows in the shape of a public labelled set (each class a
Gaussian with the public class's mean and covariance), for tasks whose scored rows must exist in no
public file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from advbench.task import Seal

DIGITS_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class LabelledArrays:
    x: "np.ndarray"  # float32 in [0, 1]: (n, 64) flat, or (n, 1, 8, 8) as images
    y: "np.ndarray"  # int64 class labels 0-9


def digits_split(seal: "Seal", *, test_fraction: float = DIGITS_TEST_FRACTION,
                 images: bool = False) -> tuple[LabelledArrays, LabelledArrays]:
    """(train, test) of ``load_digits``, pixels / 16, stratified, split from the seal.

    Arrays are C-contiguous copies: a split's fancy indexing leaves odd strides that pickling (to the
    method's process) would normalise, and some kernels then round differently in and out of process.
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images[:, None, :, :] if images else data.data) / 16.0
    x = x.astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                              random_state=seal.random_state(seal.seed, "split"))
    c = np.ascontiguousarray
    return LabelledArrays(c(x_tr), c(y_tr)), LabelledArrays(c(x_te), c(y_te))


def class_gaussian_rows(x: "np.ndarray", y: "np.ndarray", classes: "Sequence[int]", sizes: "Sequence[int]",
                        rng: "np.random.Generator", *, log: bool = False) -> list["np.ndarray"]:
    """Per class of ``classes``, ``sizes[i]`` new rows from a Gaussian with the mean and covariance of the
    public rows ``x[y == class]``: the shape of the data, never one of its rows. With ``log``, the
    Gaussian is of the log features and the rows are its exponentials (log-normal: positive features,
    such as measured lengths, stay positive). The draws come from ``rng`` (a seal's stream), class by
    class in the given order."""
    import numpy as np

    out = []
    for cls, n in zip(classes, sizes):
        rows = x[y == cls]
        rows = np.log(rows) if log else rows
        draw = rng.multivariate_normal(rows.mean(axis=0), np.cov(rows, rowvar=False), size=n)
        out.append(np.exp(draw) if log else draw)
    return out
