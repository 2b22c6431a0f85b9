"""transformer — an encoder-decoder trained from scratch on generated sequence-to-sequence problems.

Data (as in the Annotated Transformer): source sequences of length 10 over 10 symbols; the target is
the source copied, reversed or sorted. Token ids: 0 = padding, 1 = start-of-sequence, 2..11 = the
symbols. Training batches are drawn fresh from a seeded sampler (:class:`~.contract.SequenceSampler`,
stream 1 of the public run seed); the held-out set is 1000 sequences drawn from a separate stream
(stream 2, from the run's ``Seal``) and never handed to the method (the chance that a held-out
sequence also appears in training is below 1e-4 at the full budget: 10^10 possible sequences).

Sealing: in a ``--sealed`` run the 1000 held-out source sequences come from a keyed stream, so a
method cannot regenerate them from ``ctx.seed`` (unsealed they are ``default_rng([seed, 2])``'s, as
before). It cannot hide the rule itself: the targets are a fixed function of the source, so a method
that hard-codes copy / reverse / sort scores 1.0 whatever the seal; the task measures learning only
for methods that learn.

Solution: any object with ``translate(src) -> out`` taking and returning ``int64`` arrays of shape
``(batch, 10)`` (greedy decoding, no start token in the output). It runs in the scoring process and
gets the held-out *sources* only. Metrics: exact-sequence match (primary) and token accuracy on the
held-out set.

Scoring: the solution is code, asked only for ``translate(src)``. It runs in the jailed scoring
process, fresh for each evaluation of a sealed run, and answers for held-out sources; the harness
computes both metrics from the plain arrays it returns. Its CPU in one evaluation beyond 3x
``evaluation_cpu_seconds`` (1.5 s) is charged to training time; past 50x the evaluation is refused.
Throughput (sequences/s) is the method's own ``ctx.count``, and records and boards say so.

Targets: quick copy >= 0.99; full reverse >= 0.99 and sort >= 0.99 (measured with PyTorch's own
``nn.Transformer`` at d_model 64, 4 heads, 2+2 layers: copy 0.99 after 800 steps, reverse 1.00
after 600, sort 1.00 after 200).

Modules: ``contract`` (what a method imports: token ids, :class:`~.contract.SequenceSampler`, the
``Translator`` protocol) and ``heldout`` (the held-out set and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="transformer",
    version=1,
    title="Encoder-decoder transformer from scratch",
    summary="Greedy-decoded exact match on generated copy / reverse / sort problems (length 10, 10 symbols).",
    variants={
        "copy": "target = source",
        "reverse": "target = source reversed",
        "sort": "target = source sorted ascending",
    },
    metrics=(
        Metric("exact_match", "fraction", True, "share of held-out sequences decoded exactly"),
        Metric("token_accuracy", "fraction", True, "share of held-out target tokens decoded correctly"),
    ),
    primary_metric="exact_match",
    targets=(
        Target("exact_match", 0.99, "quick", "copy"),
        Target("exact_match", 0.99, "full", "reverse"),
        Target("exact_match", 0.99, "full", "sort"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"steps": 600, "batch_size": 128}, variants=("copy",)),
        "full": Budget("full", max_seconds=600, limits={"steps": 1500, "batch_size": 128},
                       variants=("copy", "reverse", "sort")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="sequences/s",
    entry_point="advbench.tasks.transformer.heldout:TransformerTask",
    evaluation_cpu_seconds=1.5,  # greedy decoding of the held-out sequences: 1.27 s measured (quick, seed 0)
    solution="object with translate(src: int64[B, 10]) -> int64[B, 10] (greedy decoding)",
    data="generated from the seed: 10 symbols, length 10; 1000 held-out sequences from a separate stream",
    extras=("torch",),
)
