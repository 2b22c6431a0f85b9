"""Glyph digits: a digit-like image family generated under the seal, so that no scored image exists
in any public file.

scikit-learn's ``load_digits`` is public: a method that holds a copy can look a held-out image up
(its nearest public neighbour carries the right label) instead of learning anything. This family
has the same shape and use (10 classes, 8x8 greyscale in [0, 1], 1800 images by default) but every
image is made by the harness when a run builds its data:

* **Writers.** Each data set has :data:`WRITERS` writers, drawn from the seal. A writer is one of
  the typefaces that ship inside matplotlib's wheel (:data:`FONTS`: DejaVu Sans, Sans Mono and
  Serif in four weights each, STIX in four, six Computer Modern faces) with a stroke width (ink
  thickened by 0-2 pixels at the rendering size), a slant, a rotation and an aspect of its
  own.
* **Samples.** Every image is a writer's glyph of one digit under its own small affine jitter
  (rotation, scale, shift), an elastic distortion (a smoothed random displacement field, as in
  Simard et al. 2003) and pixel noise, rendered at 4x the output size and averaged over 4x4 blocks,
  which is how ``load_digits`` made its 8x8 images from 32x32 bitmaps.
* **Labels.** The glyph of digit ``d`` has label ``permutation(seal)[d]``, a derangement of 0-9 drawn
  from the seal: a model of public digits (or of the fonts) never gets a label from the digit it sees,
  and whatever a method knows of the class structure it learns from its training images.

Unsealed, every draw comes from the public seed, so a run is reproducible from its record; sealed,
from the run's key, so two keys give different images and the same key the same, bit for bit
(tested). Nothing is read from disk except the font files, which are public and hold no image.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from advbench.datasets import DIGITS_TEST_FRACTION, LabelledArrays

if TYPE_CHECKING:
    import numpy as np

    from advbench.task import Seal

# matplotlib's bundled typefaces that draw all ten digits (each checked to render ten distinct glyphs).
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmmi10.ttf",
)
WRITERS = 40  # per data set, drawn from the seal (load_digits: 43 writers)
N_IMAGES = 1800  # per data set, 180 per class (load_digits: 1797)
UPSAMPLE = 4  # images are drawn at 4x the output size and averaged over 4x4 blocks

# Each writer's style, drawn uniformly from these ranges.
WRITER_SLANT = 0.35  # horizontal shear, +-
WRITER_ROTATION = 0.15  # radians, +-
WRITER_ASPECT = (0.75, 1.15)  # width / height of the glyph's box
WRITER_STROKE = (0, 1, 2)  # pixels of ink added at the drawing size (the fonts' strokes are thinner than a pen's)
# Each image's own jitter.
SAMPLE_ROTATION = 0.08  # radians, +-
SAMPLE_SCALE = (0.9, 1.05)
SAMPLE_SHIFT = 0.04  # of the image's side, +-
ELASTIC_ALPHA, ELASTIC_SIGMA = 0.025, 0.15  # displacement (of the side) and smoothing (of the side)
NOISE = 0.04  # std of the pixel noise before averaging
FIELD_SIDE = 32  # the elastic field's resolution (the drawing size of 8x8 images)
WARP_CHUNK = 200  # images warped at a time


def font_path(name: str) -> str:
    """Where matplotlib's wheel keeps typeface ``name`` (found without importing matplotlib, which
    would build its font cache in the home directory)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the glyph digits need matplotlib's typefaces: pip install 'advbench[glyphs]'")
    return os.path.join(spec.submodule_search_locations[0], "mpl-data", "fonts", "ttf", name)


@functools.lru_cache(maxsize=None)
def _glyph(font: str, digit: int, side: int) -> "np.ndarray":
    """Digit ``digit`` in ``font``, ink in [0, 1], its box fitted into 85% of a ``side`` square."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    big = 4 * side
    face = ImageFont.truetype(font_path(font), size=big)
    canvas = Image.new("L", (2 * big, 2 * big), 0)
    ImageDraw.Draw(canvas).text((big // 2, big // 4), str(digit), fill=255, font=face)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"{font} draws no ink for the digit {digit}")
    ink = canvas.crop(box)
    fit = 0.85 * side / max(ink.width, ink.height)
    ink = ink.resize((max(1, round(ink.width * fit)), max(1, round(ink.height * fit))), Image.Resampling.BOX)
    out = Image.new("L", (side, side), 0)
    out.paste(ink, ((side - ink.width) // 2, (side - ink.height) // 2))
    return np.asarray(out, dtype=np.float32) / 255.0


def _stroked(glyph: "np.ndarray", stroke: int) -> "np.ndarray":
    from scipy import ndimage

    return ndimage.grey_dilation(glyph, size=(stroke + 1, stroke + 1)) if stroke else glyph


def _linear_upsampling(n_in: int, n_out: int) -> "np.ndarray":
    """``(n_out, n_in)`` weights of linear interpolation between pixel centres (edges held)."""
    import numpy as np

    at = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.minimum(at.astype(int), n_in - 2)
    out = np.zeros((n_out, n_in))
    out[np.arange(n_out), lo] = lo + 1 - at
    out[np.arange(n_out), lo + 1] = at - lo
    return out


def permutation(seal: "Seal", stream: int = 0) -> "np.ndarray":
    """The sealed label of each digit's glyph: ``label = permutation[digit]``, a derangement (no glyph
    keeps its digit's label, so knowing the digit alone never gives the label)."""
    rng = seal.rng(900, stream, 2)
    while True:
        perm = rng.permutation(10)
        if (perm != range(10)).all():
            return perm


def glyph_digits(seal: "Seal", n: int = N_IMAGES, *, size: int = 8, stream: int = 0,
                 images: bool = False) -> LabelledArrays:
    """``n`` class-balanced glyph digits of ``size`` x ``size`` pixels in [0, 1], made under ``seal``.

    ``stream`` keeps independent families of one run apart (two calls with the same seal and stream
    give the same images). ``x`` is ``(n, size*size)`` float32, or ``(n, 1, size, size)`` with
    ``images``; ``y`` the sealed labels.
    """
    import numpy as np
    from scipy import ndimage

    side = UPSAMPLE * size
    rng = seal.rng(900, stream, 1)
    label_of_digit = permutation(seal, stream)
    # Writers: a face, a stroke and an affine style each.
    fonts = rng.integers(len(FONTS), size=WRITERS)
    strokes = rng.choice(WRITER_STROKE, size=WRITERS)
    slants = rng.uniform(-WRITER_SLANT, WRITER_SLANT, WRITERS)
    turns = rng.uniform(-WRITER_ROTATION, WRITER_ROTATION, WRITERS)
    aspects = rng.uniform(*WRITER_ASPECT, WRITERS)
    bases = np.stack([np.stack([_stroked(_glyph(FONTS[fonts[w]], d, side), int(strokes[w])) for d in range(10)])
                      for w in range(WRITERS)])  # (writers, 10, side, side)

    digits = rng.permutation(np.arange(n) % 10)
    writers = rng.integers(WRITERS, size=n)
    # Output pixel (i, j), centred and in units of the side, maps back to the base glyph through
    # the inverse of (writer style then sample jitter), then an elastic displacement.
    theta = turns[writers] + rng.uniform(-SAMPLE_ROTATION, SAMPLE_ROTATION, n)
    scale = rng.uniform(*SAMPLE_SCALE, n)
    shift = rng.uniform(-SAMPLE_SHIFT, SAMPLE_SHIFT, (n, 2))
    grid = (np.arange(side) + 0.5) / side - 0.5
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()])  # (2, side*side): x, y
    cos, sin = np.cos(theta), np.sin(theta)
    # forward map: base -> image = shift + scale * R(theta) * Shear(slant) * diag(aspect, 1); invert per image.
    fwd = np.empty((n, 2, 2))
    fwd[:, 0, 0], fwd[:, 0, 1] = cos * aspects[writers], cos * slants[writers] - sin
    fwd[:, 1, 0], fwd[:, 1, 1] = sin * aspects[writers], sin * slants[writers] + cos
    fwd *= scale[:, None, None]
    inverse = np.linalg.inv(fwd)
    # The elastic field is drawn and smoothed at FIELD_SIDE pixels a side and, for larger images,
    # interpolated up: it is smooth at 0.15 of the side either way, and smoothing it at 112 pixels
    # (28x28 images) took 6 s per 1800 images.
    field = rng.standard_normal((n, 2, FIELD_SIDE, FIELD_SIDE))
    field = ndimage.gaussian_filter(field, sigma=(0, 0, ELASTIC_SIGMA * FIELD_SIDE, ELASTIC_SIGMA * FIELD_SIDE),
                                    mode="constant")
    field *= ELASTIC_ALPHA / (field.reshape(n, -1).std(axis=1)[:, None, None, None] + 1e-12)
    up = _linear_upsampling(FIELD_SIDE, side)
    flat = bases.reshape(WRITERS * 10, side, side)
    small = np.empty((n, size, size), np.float32)
    # Image by image the same arithmetic, WARP_CHUNK images at a time: the same pixels as all at once
    # (tested bit for bit) in a fraction of the memory. At 28x28 all at once held over 1 GB of
    # temporaries, and first touches of fresh memory took most of 12 s on a VM.
    for lo in range(0, n, WARP_CHUNK):
        hi = min(n, lo + WARP_CHUNK)
        src = inverse[lo:hi] @ (pts[None] - shift[lo:hi, :, None])  # (chunk, 2, side*side)
        chunk = field[lo:hi]
        if side != FIELD_SIDE:
            chunk = up @ chunk @ up.T
        at = src + chunk.reshape(hi - lo, 2, -1)
        cols = (at[:, 0] + 0.5) * side - 0.5
        rows = (at[:, 1] + 0.5) * side - 0.5
        which = np.broadcast_to((writers[lo:hi] * 10 + digits[lo:hi])[:, None], rows.shape)
        warped = ndimage.map_coordinates(flat, [which, rows, cols], order=1, mode="constant", cval=0.0)
        # Noise is the generator's last draw: chunk after chunk, it is the draw of all at once.
        big = warped.reshape(hi - lo, side, side) + NOISE * rng.standard_normal((hi - lo, side, side))
        small[lo:hi] = np.clip(big, 0.0, 1.0).reshape(hi - lo, size, UPSAMPLE, size, UPSAMPLE).mean(axis=(2, 4))
    x = small[:, None] if images else small.reshape(n, size * size)
    return LabelledArrays(x.copy(order="C"), label_of_digit[digits].astype(np.int64))


def glyph_split(seal: "Seal", *, n: int = N_IMAGES, test_fraction: float = DIGITS_TEST_FRACTION, size: int = 8,
                images: bool = False, stream: int = 0) -> tuple[LabelledArrays, LabelledArrays]:
    """(train, test) of one glyph data set, stratified: every class gives ``test_fraction`` of its images."""
    import numpy as np

    data = glyph_digits(seal, n, size=size, stream=stream, images=images)
    order = seal.rng(900, stream, 3).permutation(n)
    test_rows = np.zeros(n, bool)
    for c in range(10):
        rows = order[data.y[order] == c]
        test_rows[rows[: round(len(rows) * test_fraction)]] = True
    # Fresh C-ordered copies: a size-1 channel axis with an odd stride reads as channels-last to
    # torch (another conv kernel), and pickling to the method's process would normalise it.
    return (LabelledArrays(data.x[~test_rows].copy(order="C"), data.y[~test_rows].copy(order="C")),
            LabelledArrays(data.x[test_rows].copy(order="C"), data.y[test_rows].copy(order="C")))
