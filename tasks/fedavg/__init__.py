"""fedavg — federated averaging (McMahan et al. 2017) over non-IID clients of glyph digits.

Data (version 2): the glyph digits of ``advbench.glyphs`` (1800 8x8 images in [0, 1], flattened to
64 features, 10 classes, generated under the seal: writers drawn from the fonts inside matplotlib,
warped, distorted and noised, each digit's label a sealed derangement of 0-9), a stratified 25% test
split (450 images) taken from the seal, and the 1350 training images dealt to 10 clients from the
public run seed, in one of two non-IID ways:

* ``pathological``: sorted by label, cut into 20 shards of about 67 images, two random shards per
  client, so a client sees one or two digits only (McMahan et al.'s pathological split);
* ``dirichlet``: for each class, the share of each client drawn from Dirichlet(0.5) (Hsu et al.
  2019); redrawn until every client holds at least 10 images (an empty client has no weight and
  no data to train on: the naive split can make one).

What a method receives: a :class:`~.contract.FederatedData`, one :class:`~.contract.ClientData`
(images, labels) per client. It may combine clients only as its algorithm does (the harness cannot
tell federated code from centralised code; the board shows centralised training as a ceiling).

Solution: any object with ``predict(x) -> labels`` (``float32[n, 64]`` in, ``int`` labels out), run
in the scoring process on the test images only. Metrics: test accuracy (primary) and the lowest
per-class recall (non-IID training often sacrifices a class).

Scoring: the solution is code, asked only for ``predict(x)``. It runs in the jailed scoring process,
fresh for each evaluation of a sealed run, on the test images; the harness computes accuracy and
recall from the plain labels it returns. Its CPU in one evaluation beyond 3x
``evaluation_cpu_seconds`` (1.0 s) is charged to training time; past 50x the evaluation is refused.
Throughput (client updates/s) is the method's own ``ctx.count``, and records and boards say so.

Budget: communication ``rounds`` (30 quick, 100 full) with every client taking part each round
(``clients_per_round`` = 10); local computation is the method's choice and its cost is wall time.
Rounds to target are in each record's targets (``step_to_target``: a method checkpoints with
``step`` = the round; the reference every 5 rounds, since a sealed run scores each checkpoint in a
fresh jailed process), time to target as everywhere (training seconds).

Targets (reference: FedAvg with server momentum 0.9, 2NN 64-200-200-10, local SGD lr 0.2, batch 10,
one local epoch, one thread), set from 13 runs of each split (seeds 0-4 unsealed, 0-7 or 0-4 under a
trial key): quick (30 rounds) pathological >= 0.85 (measured 0.880-0.962), Dirichlet >= 0.90
(0.929-0.967); full (100 rounds) >= 0.94 on both (pathological 0.951-0.976, Dirichlet 0.947-0.978).
TASKS.md's 0.90 / 0.95 were set on scikit-learn's digits, where v1 (plain averaging, lr 0.3, five
local epochs) reached 0.96-0.98; the glyphs are harder (centralised training 0.97-0.98 where digits
gave 0.98) and the pathological split hardest: plain averaging ended at 0.92-0.94 there, oscillating,
and missed 0.90 after 30 rounds on every seed (0.82-0.89). TASKS.md also asks the full run to be
within 2 points of centralised training: that compares two methods, so it is a test
(``tests/test_fedavg.py``) and the board shows the ``centralised`` ceiling beside it; the ``floor``
trains on client 0 alone.

Sealing: the images, their labels and the test split all come from the seal, so no held-out image
exists in any public file (v1 scored on scikit-learn's digits, where a nearest-public-digit lookup
answers every test row; on sealed glyphs it scores at chance: ``tests/test_glyphs.py``). The client
partition is training data and comes from the public seed.

Versions: ``fedavg-v2`` (this) scores on the sealed glyph digits, with targets measured on them;
its reference adds server momentum and takes one local epoch where v1 took five (the aggregation,
weighted by ``n_k / n``, is unchanged and still checked against Flower's). ``fedavg-v1`` scored on
scikit-learn's public digits. Records of different versions never mix.

Modules: ``contract`` (``ClientData``, ``FederatedData``, the ``Classifier`` protocol) and
``heldout`` (the split, the partition, scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="fedavg",
    version=2,
    title="Federated averaging over non-IID clients",
    summary="Glyph digits over 10 non-IID clients (2 label shards each, or Dirichlet 0.5); global-model test accuracy.",
    variants={
        "pathological": "10 clients, 2 label-sorted shards of ~67 digits each",
        "dirichlet": "10 clients, per-class shares ~ Dirichlet(0.5), at least 10 digits each",
    },
    metrics=(
        Metric("accuracy", "fraction", True, "global model's accuracy on the 450 held-out digits"),
        Metric("min_class_recall", "fraction", True, "recall of the worst-served digit class"),
    ),
    primary_metric="accuracy",
    targets=(
        Target("accuracy", 0.85, "quick", "pathological"),
        Target("accuracy", 0.90, "quick", "dirichlet"),
        Target("accuracy", 0.94, "full", "pathological"),
        Target("accuracy", 0.94, "full", "dirichlet"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"rounds": 30, "clients_per_round": 10},
                        variants=("pathological", "dirichlet")),
        "full": Budget("full", max_seconds=600, limits={"rounds": 100, "clients_per_round": 10},
                       variants=("pathological", "dirichlet")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="client updates/s",
    entry_point="advbench.tasks.fedavg.heldout:FedAvgTask",
    ceiling_methods=("centralised",),
    solution="object with predict(x: float32[n, 64]) -> int labels[n]",
    data="1800 8x8 glyph digits generated under the seal (advbench.glyphs); 25% stratified test split (sealed); 10 clients, pathological or Dirichlet(0.5)",
    extras=("federated",),
)
