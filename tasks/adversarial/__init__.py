"""adversarial — robustness of a digit classifier to L-infinity attacks: white-box PGD (Madry et al.
2018), the gradient-free Square attack (Andriushchenko et al. 2020) and a transfer attack, scored
per digit on the worst of them.

Data: the glyph digits of ``advbench.glyphs``: 1800 8x8 greyscale images in [0, 1], 10 classes,
made under the run's seal from the typefaces inside matplotlib's wheel (40 writers of a face,
stroke, slant and aspect each, every image under its own jitter, elastic distortion and noise; the
label of each digit's glyph a sealed derangement of 0-9). No held-out image exists in any file
before the harness makes it. The attack budget epsilon is in the pixels' scale (0.1 = a tenth of
the range). A stratified 75/25 split keeps 450 images as held-out test data.

What the method sees (``Problem.train``): a :class:`~.contract.Digits` with ``x`` (float32, ``(1350, 64)``, in
[0, 1]) and ``y`` (int64 labels). The held-out rows stay in ``Problem.heldout``. A method that wants
a validation split carves it out of ``train`` itself.

Solution: a :class:`~.contract.Classifier` whose ``model`` is a ``torch.nn.Module`` mapping float32
``(batch, 64)`` inputs in [0, 1] to ``(batch, 10)`` logits, on any device (the harness's questions
come to it on the model's own device). The scoring process asks the solution itself the three
questions below, so a bare ``nn.Module`` is refused ("has no method 'logits'"). The reference
architecture is an MLP 64-256-256-10 with ReLU. The model need not be differentiable: where
autograd cannot see through it the white-box attacks get zero gradients and stall, and the
gradient-free attacks are scored all the same.

The model never receives a label. It lives in the scoring process, which gets held-out, adversarial
and transferred *inputs* only and answers three questions about them (``contract.py``):
``logits(x)``; ``logits_and_jacobian(x)``, the logits and their Jacobian with respect to the input
(``[B, 10, 64]``, one backward pass per class), for PGD-20; and ``logits_and_grad_at_prediction(x,
loss)``, the gradient of the loss at the model's *own* prediction (one backward pass), for the
strong check. The attacks run here, where the labels are: the cross-entropy gradient is ``J^T
(softmax(z) - onehot(y)) / B``, the margin loss's the difference of two Jacobian rows, and the
Square attack's margin is computed from the logits. PGD-20 through the Jacobian gives the
adversarial examples of the in-process autograd attack (the signs of the two gradients agree on
every model measured; a component within rounding of zero could in principle flip); the strong
check only needs gradients where the current iterate is still classified right, where the
prediction *is* the label, so its one-backward gradient is autograd's bit for bit there and its
results equal v1's ten-backward ones digit for digit. What a solution can still learn is what any
adaptive attack reveals through the inputs it asks about (the next PGD iterate moves along the true
label's gradient sign; Square keeps the candidates that lower the true margin).

Metrics (all computed here, so every method is attacked in the same way):

* ``clean_acc``: accuracy on the 450 held-out digits.
* ``robust_acc_eps0.1`` (primary): a digit counts only if it is classified right clean *and* after
  every attack below at eps 0.1: the per-digit worst case, as AutoAttack and RobustBench score.
* ``pgd_acc_eps0.1``: PGD-20, L-infinity, step alpha = eps/4, cross-entropy, **no random start**
  (deterministic; with a local autograd oracle bit-identical to ``torchattacks.PGD(model, eps,
  alpha, 20, random_start=False)``, which the tests check). v1's primary metric, same numbers.
* ``strong_pgd_acc_eps0.1``: the worst of PGD-20; PGD-100 with cross-entropy from 5 random starts;
  PGD-100 with the Carlini-Wagner margin loss (best other logit minus true logit) from 5 random
  starts. The 100-step attacks use alpha = eps/10 halved at steps 50 and 75 (a coarse version of
  APGD's step-size schedule), and a digit misclassified at any iterate counts as broken. Random
  starts from a fixed seed (1234 unsealed; from the run's ``Seal`` when sealed). v1's
  ``strong_robust_acc_eps0.1``, same numbers.
* ``square_acc_eps0.1``: the L-infinity Square attack, which needs no gradient (``heldout.square``):
  random search over the corners of the eps-ball, from vertical stripes, with square windows whose
  side shrinks on the authors' schedule (``p_init`` 0.8, AutoAttack's value; 7x7 windows at first,
  single pixels after a tenth of the budget), a window and sign per digit, kept when it lowers the
  margin; 3 independent runs of 1000 queries (3000 queries per digit), seeds from the ``Seal``.
  The budget is measured: one run of 1000, 2000 and 5000 queries leaves the floor at 0.372, 0.364
  and 0.361 (mean of 3 seeds), the quick reference at 0.725, 0.721, 0.724 and the full reference
  at 0.850, 0.848, 0.848, while 3 runs of 1000 give 0.351, 0.716 and 0.847: on 64 pixels the
  search has converged by 1000 queries and fresh starts find more than longer runs (p_init 0.05
  and 0.3 did no better: 0.384 and 0.389 on the floor). Windows may sit anywhere; the authors'
  code and torchattacks never put one on the last row or column, which on 8x8 digits freezes 15
  pixels and leaves the floor at 0.54 instead of 0.37 (the tests compare the two both ways).
* ``transfer_acc_eps0.1``: accuracy on adversarial digits crafted once per build, in the harness, by
  PGD-20 (the settings above) on a surrogate the task trains itself (MLP 64-256-256-10, clean
  training, 15 epochs, seeded from the ``Seal``; 15, 30 and 60 epochs transferred alike, 15 a
  little better to the quick models) and only forwarded through the solution's model. It catches
  what hides from queries as well as from gradients; on the baselines it is the weakest attack
  (floor 0.44-0.46, reference 0.89-0.90).
* ``robust_acc_eps0.05`` and ``robust_acc_eps0.2``: the per-digit worst of clean, PGD-20 and one
  Square run of 1000 queries. Kept rather than dropped: the curve over eps is how one sees that
  robustness stops at the trained radius (the reference is 0.93-0.96 at 0.05 and 0.22 at 0.2), and
  with Square in them gradient masking no longer inflates them (the full-budget rounded floor:
  0.98 under PGD-20 alone at every eps; 0.68-0.75 and 0.00-0.01 with Square). One run instead of three: a
  restart at eps 0.05, where nearly every digit survives, costs as much as the whole strong check
  for a point or two on a side metric.
* ``gap_pgd_vs_worst``: ``100 * (pgd_acc_eps0.1 - robust_acc_eps0.1)`` in points: how much PGD-20
  alone over-states robustness. Near 0 for an honestly robust model; 65-87 for a masked one.

Why v2 (found by trying to game v1, whose attacks were all gradient-based): the quick floor behind a
rounding layer, ``model(round(16 x) / 16)``, changes no clean prediction (digits are multiples of
1/16) but has a zero gradient almost everywhere; v1 scored it 0.95 (strong check 0.93) and its quick
target was met. PGD through the floor without the rounding, scored on the rounded model (BPDA),
gives 0.32. v2 scores it 0.30 on the quick budget (Square 0.30, transfer 0.40) and 0.11-0.17 on the
full one (seeds 0-2: 0.169, 0.107, 0.122; PGD-20 0.98, strong 0.94-0.95): the rounding amplifies
Square's +-0.1 corners to +-2/16, so it is *less* robust than the floor it wraps.

During an attack the model is in eval mode (dropout off, batch-norm on running statistics) and its
previous mode is restored afterwards; gradients are never left on the model's parameters.

Sealing: in a ``--sealed`` run the images themselves (writers, jitter, labels, split), the strong
check's random starts, the Square attack's draws and the surrogate's seed (so the transfer examples)
come from the run's ``Seal``: a method can neither rebuild the held-out images from ``ctx.seed`` nor
tune its model against the exact random starts, windows or transferred digits, and no public file
holds them. v2 scored on scikit-learn's public digits, and a model that looked its input up among
them (the nearest public digit's label) recorded 0.956 robust at eps 0.1, above the reference's
0.838: no attack can catch a lookup (differently-labelled digits are 0.4375 apart in L-infinity).
On sealed glyphs the same model scores 0.10 clean and 0.02 robust (``tests/test_glyphs.py``).

Targets, measured with the baselines' MLP (Adam 1e-3, batch 64; adversarial training = PGD-10 at
eps 0.1, alpha eps/4, random start), one thread on the shared 2-core reference machine, on the
glyph digits (v3):

* standard training (the floor), 10 epochs (quick, seeds 0-2): clean 0.93-0.94, robust 0.091 /
  0.071 / 0.076; 60 epochs (full, seed 0): clean 0.96, robust 0.040.
* PGD adversarial training (the reference), 10 epochs (quick, seeds 0-2): clean 0.85-0.88, robust
  0.467 / 0.444 / 0.376 (Square the binding attack: 0.469 / 0.451 / 0.376; PGD-20 0.43-0.52);
  60 epochs (full): unsealed seed 0 clean 0.958, robust 0.629 (PGD-20 0.653, Square 0.638,
  transfer 0.78); sealed under the reference key, seeds 0-2, robust 0.644 / 0.576 / 0.536, clean
  0.96-0.98 (the floor 0.042 / 0.033 / 0.016).

The glyphs are harder to defend than v2's public digits (reference full 0.82-0.85, floor 0.31-0.36
there): their strokes are anti-aliased and thinner, so more pixels sit near a class boundary's
reach at eps 0.1, and the classes are closer in L-infinity. The targets follow the measurement:

* quick: ``robust_acc_eps0.1 >= 0.30`` (the reference 0.38-0.47 in 10 epochs; the floor 0.07-0.09).
* full: ``robust_acc_eps0.1 >= 0.50`` (the reference 0.536-0.644 on four runs; the floor 0.016-0.042;
  a first bar of 0.55, from unsealed seed 0 alone, was missed by sealed seed 2). v1's second
  full target, ``gap_strong_vs_pgd <= 2.0``, is gone since v2: it stood in for a worst case over
  attacks when the primary was PGD-20 alone.

v2's measurements on public digits (kept for comparison): floor full robust 0.313-0.356, reference
full 0.820-0.847, quick 0.687-0.742.

Evaluation takes about as long as v1's, with two more attacks: 14.9 s for the full reference through
the scoring process (v1 18.4 s), 10 s for the floor. The strong check's 1000 steps on one backward
pass instead of ten (3.5 s instead of 15.2 s) pay for the Square attack (8.7 s: 5000 queries per
digit at the three radii, all run as one batch of 1000 queries).

Versions: ``adversarial-v3`` (this) scores on the sealed glyph digits instead of scikit-learn's
public ones (a lookup of the public digits out-scored the reference on v2), with targets measured
on them; attacks, metrics and budgets are v2's. ``adversarial-v2`` scores the per-digit worst case of PGD-20, the strong check,
Square and the transfer attack (v1: PGD-20 alone; v1's primary and strong check are kept as
``pgd_acc_eps0.1`` and ``strong_pgd_acc_eps0.1``, v1's ``robust_acc_eps0.05/0.2`` now include
Square), drops the gap target and ``gap_strong_vs_pgd`` for ``gap_pgd_vs_worst``, and no longer
requires the model to be differentiable. Records of different versions never mix.

Modules: ``contract`` (what a method imports: ``Digits``, the threat model's constants, the margin
loss and the ``logits`` / ``logits_and_jacobian`` / ``logits_and_grad_at_prediction`` functions that
run next to the solution) and ``heldout`` (the split, the oracles, PGD, the strong check, Square,
the surrogate and its transfer examples, and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

EPSILONS = (0.05, 0.1, 0.2)
PRIMARY_EPS = 0.1
PGD_STEPS = 20
STRONG_STEPS, STRONG_RESTARTS = 100, 5
SQUARE_QUERIES, SQUARE_RESTARTS, SQUARE_P_INIT = 1000, 3, 0.8


def _eps_name(eps: float) -> str:
    return f"eps{eps:g}"


SPEC = TaskSpec(
    name="adversarial",
    version=3,
    title="PGD attack and adversarial training",
    summary="Held-out accuracy of a digit MLP under the worst of white-box PGD, a gradient-free Square attack "
            "and a transfer attack, at L-inf eps 0.05/0.1/0.2.",
    variants={"glyphs-linf": "8x8 glyph digits made under the seal (advbench.glyphs), in [0, 1], L-infinity threat model"},
    metrics=(
        Metric("clean_acc", "fraction", True, "accuracy on held-out digits"),
        *(Metric(f"robust_acc_{_eps_name(e)}", "fraction", True,
                 f"accuracy under the per-digit worst of PGD-{PGD_STEPS}, the strong PGD check, Square and the "
                 f"transfer attack (L-inf, eps {e:g})" if e == PRIMARY_EPS else
                 f"accuracy under the per-digit worst of PGD-{PGD_STEPS} and Square (L-inf, eps {e:g})")
          for e in EPSILONS),
        Metric("pgd_acc_eps0.1", "fraction", True,
               f"accuracy under PGD-{PGD_STEPS} alone (L-inf, eps 0.1, alpha eps/4, no random start; v1's primary)"),
        Metric("strong_pgd_acc_eps0.1", "fraction", True,
               "accuracy under the worst of PGD-20, and PGD-100 (CE and margin loss, 5 random restarts each) at eps 0.1"),
        Metric("square_acc_eps0.1", "fraction", True,
               f"accuracy under the gradient-free Square attack ({SQUARE_RESTARTS} x {SQUARE_QUERIES} queries, "
               "margin loss) at eps 0.1"),
        Metric("transfer_acc_eps0.1", "fraction", True,
               "accuracy on PGD-20 examples crafted at eps 0.1 on a surrogate MLP the task trains itself"),
        Metric("gap_pgd_vs_worst", "points", False,
               "100 x (pgd_acc_eps0.1 - robust_acc_eps0.1): how much PGD-20 alone over-states robustness"),
    ),
    primary_metric="robust_acc_eps0.1",
    targets=(
        Target("robust_acc_eps0.1", 0.30, "quick", "glyphs-linf"),
        Target("robust_acc_eps0.1", 0.50, "full", "glyphs-linf"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=90, limits={"epochs": 10, "batch_size": 64}, variants=("glyphs-linf",)),
        "full": Budget("full", max_seconds=600, limits={"epochs": 60, "batch_size": 64}, variants=("glyphs-linf",)),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="samples/s",
    entry_point="advbench.tasks.adversarial.heldout:AdversarialTask",
    evaluation_cpu_seconds=6.0,  # PGD-20, the strong check and Square on 450 digits: 4.67 s measured (quick, seed 0)
    solution="object with .model: torch nn.Module, float32 (B, 64) in [0, 1] -> (B, 10) logits",
    data="1800 8x8 glyph digits generated under the seal (advbench.glyphs), stratified 75/25 split (450 held-out rows)",
    extras=("vision",),  # torch, scikit-learn, matplotlib's fonts and Pillow
)
