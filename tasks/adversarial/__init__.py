"""adversarial — robustness of a digit classifier to L-infinity PGD attacks (Madry et al. 2018).

Data: scikit-learn's bundled ``load_digits`` (1797 8x8 greyscale digits, 10 classes), pixels divided
by 16 so that every input lies in [0, 1]; the attack budget epsilon is in that same scale (0.1 =
1.6 grey levels of the original 0..16). A stratified 75/25 split seeded by the run seed keeps 450
rows as held-out test data.

What the method sees (``Problem.train``): a :class:`~.contract.Digits` with ``x`` (float32, ``(1347, 64)``, in
[0, 1]) and ``y`` (int64 labels). The held-out rows stay in ``Problem.heldout``. A method that wants
a validation split carves it out of ``train`` itself.

Solution: any object with a ``model`` attribute that is a ``torch.nn.Module`` mapping float32
``(batch, 64)`` inputs in [0, 1] to ``(batch, 10)`` logits (an ``nn.Module`` itself is accepted
too). The model must be differentiable end to end: the task attacks it with gradients. The
reference architecture is an MLP 64-256-256-10 with ReLU.

The model never receives a label. It lives in the scoring process, which gets held-out and
adversarial *inputs* only and answers two questions about them (``contract.py``): ``logits(x)``
and ``logits_and_jacobian(x)``, the logits and their Jacobian with respect to the input
(``[B, 10, 64]``, one backward pass per class, model in eval mode). The attacks run here, where the
labels are, against that gradient oracle: the cross-entropy gradient is ``J^T (softmax(z) -
onehot(y)) / B`` and the margin loss's the difference of two Jacobian rows. These gradients equal
the ones autograd takes through the loss up to float rounding (relative 1e-6); PGD uses their sign
only, and on the MLPs measured (clean-trained, and adversarially trained for 10 and 60 epochs) the
signs, and so the adversarial examples and every metric, were identical to the old in-process attack's
(a component within rounding of zero could in principle flip). The peer check against torchattacks
runs the same PGD with a local autograd oracle and stays bit-identical. Ten backward passes per
step instead of one make the evaluation 5-7 times slower: 3 s became 15-20 s per evaluation of the
reference MLP on one CPU thread.

Metrics (all computed here, so every method is attacked in the same way):

* ``clean_acc``: accuracy on the 450 held-out digits.
* ``robust_acc_eps{0.05,0.1,0.2}``: accuracy under PGD-20, L-infinity, step alpha = eps/4,
  cross-entropy loss, **no random start** (deterministic; with a local autograd oracle
  bit-identical to ``torchattacks.PGD(model, eps, alpha, 20, random_start=False)``, which the tests
  check, and through the scoring process equal to it as said above). The
  primary metric is ``robust_acc_eps0.1``.
* ``strong_robust_acc_eps0.1``: a stronger check that exposes gradient masking (AutoAttack is not
  installable here). A digit counts as robust only if it survives *every* one of: the PGD-20 above;
  PGD-100 with cross-entropy from 5 random starts; PGD-100 with the Carlini-Wagner margin loss
  (best other logit minus true logit) from 5 random starts. The 100-step attacks use
  alpha = eps/10 halved at steps 50 and 75 (a coarse version of APGD's step-size schedule) and keep
  the worst point seen on the way, not only the last iterate. Random starts are drawn from a fixed
  seed (1234 unsealed; from the run's ``Seal`` when sealed), so the metric is deterministic. By
  construction it is <= the PGD-20 number.
* ``gap_strong_vs_pgd``: ``100 * (robust_acc_eps0.1 - strong_robust_acc_eps0.1)`` in points. A
  large gap means PGD-20 over-states robustness (masked or obfuscated gradients).

During an attack the model is in eval mode (dropout off, batch-norm on running statistics) and its
previous mode is restored afterwards; gradients are never left on the model's parameters.

Sealing: in a ``--sealed`` run the train/test split (scikit-learn's ``random_state``) and the seed
of the strong attack's random starts come from the run's ``Seal``, so a method can neither
recompute which digits are held out from ``ctx.seed`` nor tune its model against the exact random
starts. It cannot hide the test digits: digits is a public data set and the method holds its
training rows, so the held-out rows are the rest of scikit-learn's copy; nor the attacks, which
are public code.

Targets, measured with the baselines' MLP (Adam 1e-3, batch 64; adversarial training = PGD-10 at
eps 0.1, alpha eps/4, random start) on a shared 2-core CPU:

* standard training (the floor), 60 epochs: clean 0.978, PGD-20 robust 0.84 / 0.36 / 0.01 at eps
  0.05 / 0.1 / 0.2, strong 0.34 (10 epochs: clean 0.95, robust 0.84 / 0.50 / 0.01).
* PGD adversarial training (the reference), 60 epochs, seeds 0-2: clean 0.982-0.989, robust
  0.93-0.96 / 0.83-0.85 / 0.25, strong 0.824-0.847, gap 0.0-0.4 points (about 25-40 s of training);
  10 epochs (quick, seed 0): clean 0.97, robust 0.89 / 0.74 / 0.28, gap 2.7 points. AutoAttack,
  measured elsewhere on the same recipe, gives 0.80 at eps 0.1.

* quick: ``robust_acc_eps0.1 >= 0.60`` (the reference reaches 0.74 in 10 epochs; the floor stays
  at 0.36-0.50).
* full: ``robust_acc_eps0.1 >= 0.78`` and ``gap_strong_vs_pgd <= 2.0``: a robust model whose
  robustness is not an artefact of a weak attack. The gap bar only means something next to the
  robustness bar (the non-robust floor's gap is 1.8: there is little left for any attack to find),
  but it catches a masked model (early adversarial-training checkpoints show 3-7 points).

Modules: ``contract`` (what a method imports: ``Digits``, the threat model's constants, and the
``logits`` / ``logits_and_jacobian`` functions that run next to the solution) and ``heldout`` (the
split, the gradient oracles, PGD and the strong attack, and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

EPSILONS = (0.05, 0.1, 0.2)
PRIMARY_EPS = 0.1
PGD_STEPS = 20
STRONG_STEPS, STRONG_RESTARTS = 100, 5


def _eps_name(eps: float) -> str:
    return f"eps{eps:g}"


SPEC = TaskSpec(
    name="adversarial",
    version=1,
    title="PGD attack and adversarial training",
    summary="Held-out accuracy of a digit MLP under L-inf PGD-20 at eps 0.05/0.1/0.2, plus a stronger multi-restart check.",
    variants={"digits-linf": "sklearn load_digits in [0, 1], L-infinity threat model"},
    metrics=(
        Metric("clean_acc", "fraction", True, "accuracy on held-out digits"),
        *(Metric(f"robust_acc_{_eps_name(e)}", "fraction", True,
                 f"accuracy under PGD-{PGD_STEPS} (L-inf, eps {e:g}, alpha eps/4, no random start)")
          for e in EPSILONS),
        Metric("strong_robust_acc_eps0.1", "fraction", True,
               "accuracy under the worst of PGD-20, and PGD-100 (CE and margin loss, 5 random restarts each) at eps 0.1"),
        Metric("gap_strong_vs_pgd", "points", False,
               "100 x (robust_acc_eps0.1 - strong_robust_acc_eps0.1): how much PGD-20 over-states robustness"),
    ),
    primary_metric="robust_acc_eps0.1",
    targets=(
        Target("robust_acc_eps0.1", 0.60, "quick", "digits-linf"),
        Target("robust_acc_eps0.1", 0.78, "full", "digits-linf"),
        Target("gap_strong_vs_pgd", 2.0, "full", "digits-linf"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=90, limits={"epochs": 10, "batch_size": 64}, variants=("digits-linf",)),
        "full": Budget("full", max_seconds=600, limits={"epochs": 60, "batch_size": 64}, variants=("digits-linf",)),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="samples/s",
    entry_point="advbench.tasks.adversarial.heldout:AdversarialTask",
    solution="object with .model: torch nn.Module, float32 (B, 64) in [0, 1] -> (B, 10) logits",
    data="sklearn load_digits / 16, stratified 75/25 split seeded by the run seed (450 held-out rows)",
    extras=("vision",),  # torch + scikit-learn
)

