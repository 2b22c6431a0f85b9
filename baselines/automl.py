"""Hyperparameter optimisation with optuna, for the ``automl`` task. One file, top to bottom.

Two tuners over the same search space (``contract.SEARCH_SPACE``: an RBF SVC's ``C`` and ``gamma``
on log scales, with or without a standard scaler), scored by the same fixed folds
(``contract.cv_score``):

* ``tpe`` (the reference): optuna's ``TPESampler`` (Bergstra et al. 2011), seeded from the run seed;
* ``random_search``: optuna's ``RandomSampler`` with the same seed and the same trials, the baseline
  every tuner has to beat (Bergstra & Bengio 2012);
* ``tpe_on_ray_tune``: the reference's TPE sampler driven by Ray Tune (``OptunaSearch``), each trial a
  Ray Tune trial on a Ray instance the method starts for itself, sized to the run's threads. With
  one thread it asks for and is told exactly what the reference is, so its trials and result are
  the reference's (tested); the record says ``backend: ray-tune`` and the Ray version;
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
import shutil
import tempfile
from dataclasses import asdict, dataclass

from advbench.errors import BudgetExhausted
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


def parallel_trials() -> int:
    """Trials at once: the run's thread budget (the harness sets it), one single-threaded fit each."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))


def make_sampler(sampler_name: str, seed: int, cfg: Config):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler_name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials)
    return optuna.samplers.RandomSampler(seed=seed)


def first_trials(data: TuningData, cfg: Config) -> list[dict]:
    # gamma="scale" is not a point of the log-uniform range; on standardised data it is close to
    # 1 / n_features, so trial 0 is C=1, gamma=1/d, standard scaler: sklearn's defaults, nearly.
    return [{"C": 1.0, "gamma": default_gamma(data), "scaler": DEFAULTS["scaler"]}] if cfg.enqueue_defaults else []


def search(data: TuningData, ctx, sampler_name: str) -> TunedModel:
    import optuna

    cfg = Config(trials=int(ctx.limits["trials"]))
    n_jobs = parallel_trials()
    ctx.record_config(**asdict(cfg), sampler=sampler_name, backend="optuna", n_jobs=n_jobs, optuna=optuna.__version__)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_name, ctx.seed, cfg))
    for point in first_trials(data, cfg):
        study.enqueue_trial(point)
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


def search_on_ray_tune(data: TuningData, ctx) -> TunedModel:
    """TPE as ``search`` runs it, with Ray Tune scheduling the trials (optuna's sampler inside ``OptunaSearch``)."""
    # Read when Ray is imported: nothing goes to Ray's usage-statistics server, no token auth on a
    # private instance (ray 2.60 turns it on), and RunConfig(verbose=0) then means no console tables.
    for name, value in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_AIR_NEW_OUTPUT": "0"}.items():
        os.environ.setdefault(name, value)
    import optuna

    try:
        import ray
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        raise ImportError(f"tpe-ray-tune runs its trials on Ray Tune, which is not installed ({exc}): "
                          "pip install 'advbench[ray-tune]'") from exc

    cfg = Config(trials=int(ctx.limits["trials"]))
    n_jobs = parallel_trials()
    ctx.record_config(**asdict(cfg), sampler="tpe", backend="ray-tune", n_jobs=n_jobs, optuna=optuna.__version__,
                      ray=ray.__version__)
    # The define-by-run space is the reference's own ``suggest``: same names, same order, same log
    # scales, so the sampler sees the very questions the reference asks. The default configuration
    # goes in through optuna's enqueue (OptunaSearch's points_to_evaluate), as in ``search``.
    searcher = OptunaSearch(space=suggest, metric="cv_score", mode="max", sampler=make_sampler("tpe", ctx.seed, cfg),
                            points_to_evaluate=first_trials(data, cfg) or None)
    best = Best()
    spent: list[BudgetExhausted] = []

    class Checkpoints(tune.Callback):
        """Runs in this process as each trial ends, in the order they end (the order optuna is told)."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            best.update(trial.last_result["cv_score"], trial.config)
            ctx.count(len(data.folds))  # model fits
            ctx.progress(len(best.trace), cfg.trials)
            if len(best.trace) % cfg.checkpoint_every == 0 or len(best.trace) == cfg.trials:
                try:
                    ctx.checkpoint(refit(best.config, data), step=len(best.trace))
                except BudgetExhausted as exc:  # Tune would file it as a failed trial and go on
                    spent.append(exc)

    class OnceTheBudgetIsSpent(tune.Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return bool(spent)

    # A Ray instance of this run's own, never a cluster it happens to find (RAY_ADDRESS): the
    # executor granted this run n_jobs CPUs, and its trials use those. Ray keeps its session in
    # $TMPDIR/ray, which the harness gives each method process and removes after it; Tune's files
    # go to a scratch folder removed here.
    scratch = tempfile.mkdtemp(prefix="tune-")
    ray.init(address="local", num_cpus=n_jobs, include_dashboard=False, object_store_memory=100 * 2**20,
             log_to_driver=False, configure_logging=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(tune_trial, data=data), {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=cfg.trials, max_concurrent_trials=n_jobs,
                                        reuse_actors=True),  # one worker per slot, not one per trial
            run_config=tune.RunConfig(storage_path=scratch, verbose=0, callbacks=[Checkpoints()],
                                      stop=OnceTheBudgetIsSpent()),
        )
        grid = tuner.fit()
        if spent:
            raise spent[0]  # the harness scores the last checkpoint, as for any method out of time
        failed = [r.error for r in grid if r.error is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} Ray Tune trial(s) failed; the first: {failed[0]!r}")
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    ctx.record_config(best_cv_by_trial=best.trace, best_config=best.config, best_cv=best.value)
    return refit(best.config, data)


def tune_trial(config: dict, data: TuningData) -> dict:
    """One Ray Tune trial, in a Ray worker process: the CV score of one configuration on the fixed folds."""
    return {"cv_score": cv_score(config, data)}


class Best:
    """The best configuration so far and the best-score-against-trials curve; ties keep the earlier trial, as optuna does."""

    def __init__(self) -> None:
        self.value, self.config, self.trace = float("-inf"), None, []

    def update(self, value: float, config: dict) -> None:
        if value > self.value:
            self.value, self.config = float(value), dict(config)
        self.trace.append(self.value)


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


def tpe_on_ray_tune(data: TuningData, ctx) -> TunedModel:
    """The reference's TPE with its trials run by Ray Tune (needs advbench[ray])."""
    return search_on_ray_tune(data, ctx)


def defaults(data: TuningData, ctx) -> TunedModel:
    """Floor: scikit-learn's default SVC behind a standard scaler, no tuning."""
    ctx.record_config(config=DEFAULTS)
    ctx.count(1)
    return TunedModel(dict(DEFAULTS), make_model(DEFAULTS).fit(data.x, data.y))
