"""edge — compressing a given CNN for deployment: int8 quantisation and pruning, measured on CPU.

Data: the glyph digits of ``advbench.glyphs`` as ``1 x 8 x 8`` images in [0, 1]: 1800 images of 10
classes made under the run's seal from the typefaces inside matplotlib's wheel (40 writers, each
image jittered, elastically distorted and noised; each digit's label a sealed derangement), so no
held-out image exists in any public file. A stratified 75/25 split keeps 450 images as held-out test data.

The source model is the task's. ``build`` trains the fp32 CNN every ratio is taken against
(``DigitCNN``: conv32-bn-relu, conv64-bn-relu, max-pool, linear 1024-256-10), deterministically
from the seed: ``torch.manual_seed(seed)``, Adam 1e-3, batches of 64 in ``default_rng([seed, 5])``
order, ``source_epochs`` epochs (10 quick, 30 full), one thread; the v1 reference's fp32 training
exactly (on v2's public digits its held-out accuracy was v1's: 0.993, 0.991, 0.998 on seeds 0-2, full). ``build`` saves
it as a deployable file at once; the harness keeps those bytes, so nothing a method does to its
copy changes the reference.

What the method sees (``Problem.train``): a :class:`~.contract.EdgeTrain` with ``model`` (the
source model, eval mode), ``x`` (float32, ``(1350, 1, 8, 8)``) and ``y`` (int64) for calibration
and fine-tuning, and ``source_training`` (how the source was trained). The held-out images stay in
``Problem.heldout``.

Solution: a :class:`~.contract.EdgeSolution` with ``int8`` (the compressed model, float32 ``(B,
1, 8, 8)`` in, ``(B, 10)`` logits out, quantise / dequantise stubs inside; ``None`` deploys the
source model), ``pruned`` (a pruned model or ``None``), ``quant_engine`` (the
``torch.backends.quantized.engine`` its int8 weights were packed for; the models are loaded under
it) and, for the record, ``quant_path`` and ``prune_amount``.

How it is measured. Every model is scored as the file one would ship: a TorchScript archive.
The harness asks the solution for ``deployable_files()`` (:func:`~.contract.export`, in the
scoring process: the only solution code that runs), which turns ``int8`` and ``pruned`` into
``torch.jit.save`` bytes (``torch.jit.script``, else ``torch.jit.trace`` on two random images; a
ScriptModule is saved as it is). The harness's clean scoring process (jailed, fresh for each
evaluation of a sealed run, and it never opens a solution) writes them and the source model's file
into its private /tmp, takes the sizes from the file system, loads each model back from its file
with ``torch.jit.load`` and returns the predictions on the held-out images (never the labels),
the numbers each file stores and the latencies (:func:`~.contract.measure_files`). Accuracies and
ratios are computed here, where the labels are.

Why TorchScript (measured on a seed-0 source model and its int8 model, fp32 / int8 bytes):
``state_dict`` 1,141,555 / 298,837 = 3.82 (v1's measure); ``torch.save`` of the whole module
1,145,139 / 300,141 = 3.82; TorchScript 1,160,773 / 313,823 = 3.70; ``torch.export`` fails on
eager int8 modules (their packed weights have no ``__obj_flatten__``; fp32 alone exported to 1.5
MB). A ``state_dict`` omits whatever a module keeps in plain attributes, which is how v1 scored an
"int8" model with nothing quantised. A whole-module ``torch.save`` is a pickle that needs the
method's Python classes to load: loading it runs the method's code, which can hold or fetch the
weights, so its size says little, and timing it runs the method's Python next to the timer. A
TorchScript file holds the code and every tensor it uses (parameters, buffers, plain attributes,
traced constants), and ``torch.jit.load`` runs no Python from it. TorchScript is deprecated in
torch 2.13 in favour of ``torch.export``, which cannot take eager int8 models yet; the measurement
silences the deprecation warnings. File sizes depend by some tens of bytes on the names
TorchScript mangles (``___torch_mangle_N``, numbered by what the process compiled before): an
in-process run's ``size_ratio`` differs from an isolated one's in the fourth digit.

Why latency is timed there. v1 timed the models with ``time.perf_counter`` in the scoring process,
where the method's code runs (unpickling a solution runs it) and may patch the timer, or replace
the measuring function itself. Timing round trips to the scoring process from the harness would
not help against the latter: a replaced function can answer without computing. The measuring
process holds only the harness, torch, numpy and the contract; the models in it are TorchScript programs, which cannot
reach Python's ``time`` module, so its timers are the harness's own. It refuses a file whose code
reads or writes files (``torch.from_file`` would let a tiny file run on weights left on disk) or
forks work onto another thread; each timed call gets one of 16 different batches, and a model
whose saved state differs after the timing from before (a cache of earlier answers) is refused.
TorchScript and eager timings of the same models agree to 6 % (fp32 17.9 against 18.5 ms, int8 7.7
against 8.1 ms at batch 256).

Metrics (all on the held-out images, all from the loaded files):

* ``fp32_acc``, ``int8_acc`` (fractions) and ``acc_drop`` = ``100 * (fp32_acc - int8_acc)`` in
  points, lower is better (negative when quantisation happens to help).
* ``size_ratio`` (primary): source file bytes over int8 file bytes. Higher is better.
* ``latency_{fp32,int8}_b{1,256}_ms``: per-call latency in milliseconds of a forward pass under
  ``torch.inference_mode`` on ONE thread, after warm-up, the median over 21 repeats. The fp32 and
  int8 timings are interleaved repeat by repeat so that load from other processes falls on both
  alike; ``speedup_b1`` / ``speedup_b256`` are the median of the per-repeat ratios fp32 / int8.
* ``prune_acc_drop`` = ``100 * (fp32_acc - pruned_acc)`` in points; ``prune_sparsity`` = 1 -
  (nonzero numbers the pruned file stores) / (nonzero numbers the source file stores), counting
  every tensor storage in the file and every numeric literal in its code
  (:func:`~.contract.stored_numbers`), so zero padding or weights moved out of the conv and linear
  layers do not count as pruning; ``pruned_size_ratio`` = source bytes over pruned bytes (about 1:
  dense storage does not shrink with zeros; with the pruning masks left in place the model does not
  script, and traced it stores ``weight_orig`` and ``weight_mask``: about 0.5).

Targets (measured with the reference baseline, ``advbench.baselines.edge:compress``; full budget,
seeds 0-2, on a 2-core AMD EPYC (AVX2, no VNNI) shared with other jobs, so every timing is noisy):

* quick: ``acc_drop <= 1.0`` and ``size_ratio >= 3.5``. Static int8 with fused conv-bn-relu keeps
  accuracy (drop -0.22 to 0 points) at 313,823 bytes against 1,160,773: 3.699 on every seed (a
  file's size depends on the architecture, not on the weights), so 3.5 holds with 5 % to spare.
* full: the same, plus ``speedup_b256 >= 1.2``, ``prune_acc_drop <= 1.0`` and
  ``prune_sparsity >= 0.69``. With the ``onednn`` engine (the reference's choice) int8 took 7.7-9.4
  ms against 17.2-21.7 ms for fp32 at batch 256, speedup 2.22-2.50 over two sweeps of seeds 0-2
  (v1's records from an earlier session said 1.64-1.71 for the same pair in eager mode; eager mode
  gives 2.34 on this machine today, so the machine moved, not the format); with the ``x86`` engine
  (fbgemm here) v1 measured 1.19-1.42, too close to 1.2 to be a reliable bar. At batch 1 onednn is
  slower than fp32 (0.62-0.66x), so batch 1 has no target and ``speedup_b1`` is reported for
  information only. 70 % global magnitude pruning of the conv and linear weights with fine-tuning
  kept accuracy (drop -0.22 to +0.22 points) and gives ``prune_sparsity`` 0.698 (the biases,
  batch-norm statistics and code literals stay nonzero), hence the bar at 0.69 (v1's 0.7 counted
  conv and linear weights only); without it the unpruned model would meet the drop target
  trivially. Unstructured sparsity gives no dense speedup, so the pruned model has no speed target.
  A full run takes about 25 s: 10-12 s set-up (training the source), 5-6 s of method, 4-5 s per
  scoring (each starts the measuring process).

The floor hands back no model: the source is deployed in place of both, drop 0, size ratio 1,
speedup about 1, sparsity 0.

What the measurement cannot rule out: the file is what is scored, and any TorchScript program that
maps images to logits is a model. A smaller network distilled from the source is a fair compression;
a lookup table of public images would be too (its size counts), which is why no held-out image is public.

Sealing: in a ``--sealed`` run the images (writers, jitter, labels) and the split come from the
run's ``Seal``, so a method can neither rebuild them from ``ctx.seed`` nor find them in any file; the
source model is trained on the sealed training part. v2 scored on scikit-learn's public digits, and a
TorchScript table of them scored int8 accuracy 1.0 at a size ratio of 58 (the reference: 3.70); on
sealed glyphs such a table scores at chance (``tests/test_glyphs.py``). Size, sparsity and latency
depend on no held-out choice at all.

Versions: ``edge-v3`` (this) scores on the sealed glyph digits instead of scikit-learn's public ones;
model, metrics, budgets and targets are v2's (measured on glyphs, quick, seeds 0-1: fp32 and int8
accuracy 0.993, drop 0, size ratio 3.699, sparsity 0.698). ``edge-v2`` took the fp32 model from the task instead of the method (v1 let a
method pad its fp32 model with an 8 MB buffer and keep its "int8" weights in plain attributes,
which ``state_dict`` sizes do not see: ``size_ratio`` 6129 with nothing quantised); measures sizes
as TorchScript file bytes (3.70 for the reference where v1 said 3.82), and predictions, sparsity
and latency on the models loaded back from those files in a fresh process; counts sparsity over
every number a file stores (target 0.7 -> 0.69); renames the budget's ``epochs`` to
``source_epochs`` (the task trains the source, at set-up, outside the method's clock); and copies
the split's arrays into fresh memory (``train_test_split`` left them with a stride torch reads as
channels-last, which pickling to the method's process undid, so v1's in-process and isolated runs
computed slightly differently). Records of the two versions never mix.

Modules: ``contract`` (what a method imports: ``EdgeTrain``, ``EdgeSolution``, ``DigitCNN`` and
its training, the export and the measuring process) and ``heldout`` (the split, the source model,
the metrics; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

LATENCY_BATCHES = (1, 256)  # batch sizes of the latency metrics (the contract re-exports it)

SPEC = TaskSpec(
    name="edge",
    version=3,
    title="Quantisation and pruning for deployment",
    summary="Static int8 quantisation and magnitude pruning of a given digit CNN: accuracy drop, deployable file size, single-thread latency.",
    variants={"glyphs-cnn": "8x8 glyph digits made under the seal (advbench.glyphs) as 1x8x8 images, small conv-bn-relu CNN"},
    metrics=(
        Metric("size_ratio", "x", True, "source TorchScript file bytes / int8 TorchScript file bytes"),
        Metric("acc_drop", "points", False, "100 x (fp32 accuracy - int8 accuracy) on held-out images"),
        Metric("fp32_acc", "fraction", True, "held-out accuracy of the fp32 model"),
        Metric("int8_acc", "fraction", True, "held-out accuracy of the int8 model"),
        *(Metric(f"latency_{kind}_b{b}_ms", "ms", False, f"median per-call latency, batch {b}, one thread")
          for b in LATENCY_BATCHES for kind in ("fp32", "int8")),
        *(Metric(f"speedup_b{b}", "x", True, f"fp32 / int8 latency at batch {b} (median of paired repeats)")
          for b in LATENCY_BATCHES),
        Metric("prune_acc_drop", "points", False, "100 x (fp32 accuracy - pruned accuracy)"),
        Metric("prune_sparsity", "fraction", True,
               "1 - nonzero numbers in the pruned file / nonzero numbers in the source file"),
        Metric("pruned_size_ratio", "x", True,
               "source file bytes / pruned file bytes (about 1; about 0.5 if masks are left)"),
    ),
    primary_metric="size_ratio",
    targets=(
        Target("acc_drop", 1.0, "quick", "glyphs-cnn"),
        Target("size_ratio", 3.5, "quick", "glyphs-cnn"),
        Target("acc_drop", 1.0, "full", "glyphs-cnn"),
        Target("size_ratio", 3.5, "full", "glyphs-cnn"),
        Target("speedup_b256", 1.2, "full", "glyphs-cnn"),
        Target("prune_acc_drop", 1.0, "full", "glyphs-cnn"),
        Target("prune_sparsity", 0.69, "full", "glyphs-cnn"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=120,
                        limits={"source_epochs": 10, "finetune_epochs": 2, "calibration_batches": 8, "batch_size": 64},
                        variants=("glyphs-cnn",)),
        "full": Budget("full", max_seconds=600,
                       limits={"source_epochs": 30, "finetune_epochs": 10, "calibration_batches": 16, "batch_size": 64},
                       variants=("glyphs-cnn",)),
    },
    profiles=("cpu",),  # int8 eager kernels (fbgemm / x86 / qnnpack) are CPU-only; latency is a CPU measurement
    throughput_unit="samples/s",
    entry_point="advbench.tasks.edge.heldout:EdgeTask",
    solution_data=("deployable_files",),
    solution=("EdgeSolution(int8, pruned, quant_path, quant_engine): nn.Modules or ScriptModules, "
              "float32 (B,1,8,8) -> (B,10) logits; the fp32 source model is the task's"),
    data=("1800 glyph digits generated under the seal (advbench.glyphs) as 1x8x8 images, stratified 75/25 split (450 held-out); "
          "the task's fp32 DigitCNN trained on the training part"),
    extras=("vision",),  # torch, scikit-learn, matplotlib's fonts and Pillow
)

