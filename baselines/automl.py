"""Hyperparameter optimisation with optuna, for the ``automl`` task. One file, top to bottom.

Two tuners over the same search space (``contract.SEARCH_SPACE``: an RBF SVC's ``C`` and ``gamma``
on log scales, with or without a standard scaler), scored by the same fixed folds
(``contract.cv_score``):

* ``tpe`` (the reference): optuna's ``TPESampler`` (Bergstra et al. 2011), seeded from the run seed;
* ``random_search``: optuna's ``RandomSampler`` with the same seed and the same trials, the baseline
  every tuner has to beat (Bergstra & Bengio 2012);
* ``defaults`` (the floor): scikit-learn's defaults, no tuning.

Both tuners start with the default configuration enqueued as trial 0, so neither can end below the
floor on the CV score. After the trials the best configuration is refit on the whole training part
and returned; the harness scores it on the outer hold-out, never seen by the search, and recomputes
its CV score (the best CV score of a search is optimistic: it was the maximum of many noisy
estimates, and the record shows the gap).

Traps handled: the folds are fixed by the task (a new split per trial would compare trials on
different data); ``C`` and ``gamma`` are sampled on log scales; trials run in parallel through
optuna's own ``n_jobs`` (threads), at most as many as the run's thread budget, and each fit is
single-threaded (libsvm is), so nothing oversubscribes the cores.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from advbench.tasks.automl.contract import DEFAULTS, SEARCH_SPACE, TunedModel, TuningData, cv_score, make_model


@dataclass
class Config:
    trials: int = 40  # overridden by the budget
    checkpoint_every: int = 5  # trials between scored checkpoints (the learning curve against trials)
    n_startup_trials: int = 10  # TPE: random trials before the density model takes over (optuna's default)
    enqueue_defaults: bool = True  # trial 0 is sklearn's default configuration


def suggest(trial) -> dict:
    """One configuration from the search space, log scales where the space says so."""
    config = {}
    for name, (kind, *args) in SEARCH_SPACE.items():
        if kind == "log-uniform":
            config[name] = trial.suggest_float(name, args[0], args[1], log=True)
        else:
            config[name] = trial.suggest_categorical(name, list(args))
    return config


def refit(config: dict, data: TuningData) -> TunedModel:
    return TunedModel(dict(config), make_model(config).fit(data.x, data.y))


def search(data: TuningData, ctx, sampler_name: str) -> TunedModel:
    import optuna

    cfg = Config(trials=int(ctx.limits["trials"]))
    # Trials in parallel threads, never more than the run's thread budget (the harness sets it).
    n_jobs = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    ctx.record_config(**asdict(cfg), sampler=sampler_name, n_jobs=n_jobs, optuna=optuna.__version__)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=ctx.seed, n_startup_trials=cfg.n_startup_trials)
               if sampler_name == "tpe" else optuna.samplers.RandomSampler(seed=ctx.seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if cfg.enqueue_defaults:
        # gamma="scale" is not a point of the log-uniform range; on standardised data it is close to
        # 1 / n_features, so trial 0 is C=1, gamma=1/d, standard scaler: sklearn's defaults, nearly.
        study.enqueue_trial({"C": 1.0, "gamma": default_gamma(data), "scaler": DEFAULTS["scaler"]})
    trace: list[float] = []

    def objective(trial) -> float:
        config = suggest(trial)
        return cv_score(config, data)

    def after_trial(study, trial) -> None:
        done = len(study.trials)
        trace.append(float(study.best_value))
        ctx.count(len(data.folds))  # model fits
        ctx.progress(done, cfg.trials)

    done = 0
    while done < cfg.trials:
        chunk = min(cfg.checkpoint_every, cfg.trials - done)
        study.optimize(objective, n_trials=chunk, n_jobs=n_jobs, callbacks=[after_trial])
        done = len(study.trials)
        ctx.checkpoint(refit(study.best_params, data), step=done)
    ctx.record_config(best_cv_by_trial=trace, best_config=study.best_params, best_cv=float(study.best_value))
    return refit(study.best_params, data)


def default_gamma(data: TuningData) -> float:
    """sklearn's gamma="scale" on standardised data: 1 / (n_features * var) = 1 / n_features, clipped to the range."""
    low, high = SEARCH_SPACE["gamma"][1:]
    return min(max(1.0 / data.x.shape[1], low), high)


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------

def tpe(data: TuningData, ctx) -> TunedModel:
    """Reference: optuna's TPE sampler, seeded, on the fixed folds."""
    return search(data, ctx, "tpe")


def random_search(data: TuningData, ctx) -> TunedModel:
    """Random search with the same seed, trials and folds."""
    return search(data, ctx, "random")


def defaults(data: TuningData, ctx) -> TunedModel:
    """Floor: scikit-learn's default SVC behind a standard scaler, no tuning."""
    ctx.record_config(config=DEFAULTS)
    ctx.count(1)
    return TunedModel(dict(DEFAULTS), make_model(DEFAULTS).fit(data.x, data.y))
