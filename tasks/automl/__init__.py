"""automl — hyperparameter optimisation: optuna's TPE against random search on fixed folds, scored on an outer hold-out.

Data (scikit-learn, nothing downloaded): ``digits`` (1797 x 64, 10 classes), ``breast_cancer``
(569 x 30, binary), ``wine`` (178 x 13, 3 classes) and ``synthetic``,
``make_classification(5000, 40, n_informative=10, flip_y=0.05, class_sep=0.8)`` (binary, for
headroom: 5% flipped labels cap it below 1). A stratified 25% outer hold-out comes from the seal;
the method receives the rest with five fixed stratified folds (from the public seed) that every
trial must use. Scoring: accuracy, or ROC AUC for the binary sets.

Search space (``contract.SEARCH_SPACE``): RBF SVC, ``C`` in [1e-2, 1e3] and ``gamma`` in
[1e-5, 10] on log scales, standard scaler or none. A method returns the chosen configuration and
its pipeline refit on all training data (``contract.TunedModel``). Metrics: ``holdout_score``
(primary), ``cv_score`` (the chosen configuration's CV score, recomputed by the harness with
``contract.cv_score``, equal to ``cross_val_score`` on the same folds: tested) and
``generalisation_gap`` (CV minus hold-out: the best CV score of a search is an optimistic
estimate). Each record's ``config.method.best_cv_by_trial`` is the best-score-against-trials curve;
its learning curve is the hold-out score of the refit best every 5 trials.

Scoring: the solution is code, asked for ``chosen_config()`` and ``predict(x)`` or (binary sets)
``decision_function(x)`` on the hold-out rows, in the jailed scoring process (fresh for each evaluation of a
sealed run); the harness computes the hold-out score from the plain outputs and the CV score from the
configuration itself. Its CPU in one evaluation beyond 3x ``evaluation_cpu_seconds`` (1.0 s) is charged to
training time; past 50x the evaluation is refused. Throughput (model fits/s) is the method's ``ctx.count``.

Methods: ``reference`` = optuna ``TPESampler(seed)``, ``random`` = ``RandomSampler(seed)``, same
trials, both starting from the default configuration; ``floor`` = scikit-learn's defaults, no
tuning. Trials run through optuna's ``n_jobs`` (threads), never more than the run's threads.
``tpe-ray-tune`` (``pip install 'advbench[ray-tune]'``) is the reference's TPE sampler with Ray Tune
running the trials (``OptunaSearch``; one trial per Ray worker, as many at once as the run has
threads, on a Ray instance the method starts for itself): on one thread its trials, choice and
scores equal the reference's, seed for seed (tested, and on the committed records); its records
say ``backend: ray-tune``, and the speed board shows what Ray costs.

Budgets: ``trials``, quick 15 (digits), full 40 (every set).
Targets (TASKS.md): quick digits hold-out accuracy ≥ 0.980, full ≥ 0.983. The comparison of TPE
with random search over seeds is a test on the committed records (``tests/test_automl.py``), on
the CV score: the hold-out sets (450, 143, 45 and 1250 rows) are too small for 40-trial searches to
differ on them by more than their noise.

Measured (full budget, 10 seeds, one thread; mean hold-out / mean CV score): digits TPE 0.990 /
0.991, random 0.988 / 0.989, defaults 0.982 / 0.979 (TPE and random meet 0.983 on all 10 seeds,
defaults on 3); breast_cancer 0.996 / 0.996, 0.995 / 0.996, 0.995 / 0.995; wine 0.980 / 0.986,
0.976 / 0.983, 0.989 / 0.974; synthetic 0.957 / 0.956, 0.953 / 0.951, 0.931 / 0.925. TPE's CV
score is the highest on every set; on the hold-outs of the small sets the three are within noise
(wine's 45 rows: one image is 0.022), which is why the comparison test reads the CV scores.

Sealing (what is sealed, what is public): the outer hold-out's split and the ``synthetic`` set's
generator seed come from the seal. digits, breast_cancer and wine are public data sets: the
hold-out is the rest of scikit-learn's copy, and a model that looks a row up there scores 1.0. Only
``synthetic`` holds no public item today; sealed versions of the others are to follow.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="automl",
    version=1,
    title="Hyperparameter optimisation",
    summary="An RBF SVC's C, gamma and scaling tuned by optuna (TPE, random search) on fixed 5-fold CV; "
            "the refit best configuration scored on an outer hold-out.",
    variants={
        "digits": "sklearn load_digits (1797 x 64, 10 classes); accuracy",
        "breast_cancer": "sklearn load_breast_cancer (569 x 30, binary); ROC AUC",
        "wine": "sklearn load_wine (178 x 13, 3 classes); accuracy",
        "synthetic": "make_classification(5000, 40, n_informative=10, flip_y=0.05, class_sep=0.8), binary; ROC AUC",
    },
    metrics=(
        Metric("holdout_score", "score", True, "accuracy (AUC for binary sets) of the refit chosen configuration "
                                               "on the 25% outer hold-out"),
        Metric("cv_score", "score", True, "the chosen configuration's mean score over the fixed folds, recomputed "
                                          "by the harness"),
        Metric("generalisation_gap", "score", False, "cv_score - holdout_score: how optimistic the CV estimate was"),
    ),
    primary_metric="holdout_score",
    targets=(
        Target("holdout_score", 0.980, "quick", "digits"),
        Target("holdout_score", 0.983, "full", "digits"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"trials": 15}, variants=("digits",)),
        "full": Budget("full", max_seconds=600, limits={"trials": 40},
                       variants=("digits", "breast_cancer", "wine", "synthetic")),
    },
    profiles=("cpu",),
    throughput_unit="model fits/s",
    entry_point="advbench.tasks.automl.heldout:AutoMLTask",
    solution="contract.TunedModel: chosen_config() -> dict, predict(x), decision_function(x)",
    data="scikit-learn's digits, breast_cancer, wine and a generated set; 25% stratified outer hold-out (sealed); "
         "5 fixed stratified folds on the rest",
    extras=("automl",),
    method_extras={"tpe-ray-tune": ("ray-tune", "ray")},
)
