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
digit, by the run seed: stream 1) *before* any example is made: the 6000 training triples (stream
2) use training-pool images only and the 2000 held-out triples (stream 3) test-pool images only.
(Sampling triples first and then splitting would reuse the same digit images on both sides and let
a model memorise them.)

The method receives ``Problem.train``, a dict of numpy arrays ``image float32 (N, 8, 8)``, ``audio
float32 (N, 64)``, ``text int64 (N, 8)`` and ``label int64 (N,)``; it never sees the held-out
triples nor the per-modality classes (digit, audio class) behind the labels.

Solution: any object with ``predict(image, audio, text) -> int array (N,)`` on arrays shaped as
above. It runs in the scoring process and gets the held-out triples' inputs only, never their
labels. Metrics: accuracy (primary) and macro-F1 on the 2000 held-out triples, computed here.

Scoring: the solution is code, asked only for ``predict(image, audio, text)``. It runs in the jailed
scoring process, fresh for each evaluation of a sealed run, on the held-out inputs; the harness
computes accuracy and macro-F1 from the plain labels it returns. Its CPU in one evaluation beyond 3x
``evaluation_cpu_seconds`` (1.0 s) is charged to training time; past 50x the evaluation is refused.
Throughput (examples/s) is the method's own ``ctx.count``, and records and boards say so.

Sealing: in a ``--sealed`` run the image pools (stream 1) and the held-out triples (stream 3: which
test-pool image, audio class, tone, noise, instruction and filler tokens) come from the run's
``Seal``, so a method cannot regenerate the held-out audio and text (nor so the labels) from
``ctx.seed``. It cannot hide the images: load_digits is public, so the test pool is the part of
scikit-learn's copy that never appears in training, and a model could look a digit's class up there;
the generative rules (tone frequency = 2 + class, the instruction tokens) are public too.

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

Modules: ``contract`` (what a method imports: the token ids, sizes and the ``Classifier`` protocol)
and ``heldout`` (the data generator, the pools and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

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
    entry_point="advbench.tasks.multimodal.heldout:MultimodalTask",
    solution="object with predict(image: float32[N, 8, 8], audio: float32[N, 64], text: int64[N, 8]) -> int[N]",
    data="generated from the run seed: load_digits images (pools split before sampling), synthetic tones and tokens",
    extras=("vision",),
)

