"""The Optuna side of a sweep: search space, storage, study, progress.

Pure Optuna, scikit-learn and the spec; no MLflow. :mod:`runway.jobs.sweep` runs trials
against what is set up here; :mod:`runway.jobs.study_plots` draws the finished study.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sklearn.pipeline import Pipeline

from runway.core.documents import Params
from runway.core.training.data import Split
from runway.core.training.pipeline import build_pipeline
from runway.core.training.spec import ExperimentSpec, ParamSpace, SweepSpec, spec_from_dict
from runway.errors import SweepError
from runway.net import redact_text, redact_url

log = logging.getLogger(__name__)

ESTIMATOR_CHOICE = "estimator"
PARENT_ATTR = "mlflow_parent_run_id"
SPEC_HASH_ATTR = "spec_hash"
TARGET_ATTR = "runway.trials"  # how many trials the study's owner asked for, all workers together
KEY_ATTR = "runway.study_key"  # the spec's study name: who joins must bring the same spec
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED_ATTR = "runway.interrupted"  # a FAIL a kill left behind, not an evaluation


@dataclass(frozen=True)
class Heartbeat:
    """Optuna's heartbeats on an RDB study; every worker of a study must use the same."""

    interval: int
    grace: int
    retries: int


def sweep_of(spec: ExperimentSpec) -> SweepSpec:
    """The spec's sweep section; a clear error when it has none."""
    if spec.sweep is None:
        raise SweepError("the spec has no sweep section; add sweep.space (see runway spec schema)")
    return spec.sweep


# --- the search space ------------------------------------------------------------


def searched_params(spec: ExperimentSpec) -> list[str]:
    """The params a trial's run logs: ``estimator`` when several compete, then each dimension."""
    sweep = sweep_of(spec)
    names = ["estimator"] if sweep.estimators else []
    names += list(sweep.space)
    for space in (sweep.estimators or {}).values():
        names += list(space)
    return list(dict.fromkeys(names))


def suggest(trial: optuna.Trial, spec: ExperimentSpec) -> tuple[str, Params]:
    """Sample the estimator name and its ``step__param`` values for one trial."""
    sweep = sweep_of(spec)
    name = spec.estimator.name
    dims: dict[str, ParamSpace] = dict(sweep.space)
    if sweep.estimators:
        name = trial.suggest_categorical(ESTIMATOR_CHOICE, list(sweep.estimators))
        # Conditional: each estimator's params are distinct Optuna dimensions.
        dims.update(sweep.estimators[name])
    params: Params = {}
    for key, dim in dims.items():
        params[key] = _suggest_one(trial, _dimension_name(key, name, sweep.estimators), dim)
    return name, params


def _dimension_name(key: str, estimator: str, estimators: dict[str, Any] | None) -> str:
    if estimators and key.startswith("model__"):
        return f"{estimator}:{key}"
    return key


def _suggest_one(trial: optuna.Trial, name: str, dim: ParamSpace) -> Any:
    if dim.type == "categorical":
        return trial.suggest_categorical(name, list(dim.choices or ()))
    assert dim.low is not None and dim.high is not None  # validated by ParamSpace
    if dim.type == "int":
        return trial.suggest_int(
            name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log
        )
    return trial.suggest_float(name, float(dim.low), float(dim.high), step=dim.step, log=dim.log)


def params_of(spec: ExperimentSpec, trial: optuna.trial.FrozenTrial) -> tuple[str, Params]:
    """A finished trial's estimator and ``step__param`` values (undoing conditional names)."""
    params = dict(trial.params)
    estimator = (
        params.pop(ESTIMATOR_CHOICE, spec.estimator.name)
        if sweep_of(spec).estimators
        else spec.estimator.name
    )
    return estimator, {k.split(":", 1)[1] if ":" in k else k: v for k, v in params.items()}


def build_trial_pipeline(
    spec: ExperimentSpec, split: Split, estimator: str, params: Params
) -> Pipeline:
    """The pipeline one trial evaluates (and the refit of the best one)."""
    pipeline = build_pipeline(trial_spec(spec, estimator), **split.columns_by_kind())
    return pipeline.set_params(**params)


def trial_spec(spec: ExperimentSpec, estimator: str) -> ExperimentSpec:
    """The spec with the trial's estimator (its params come from the trial)."""
    if estimator == spec.estimator.name:
        return spec
    doc = spec.model_dump(mode="json")
    doc["estimator"] = {"name": estimator, "params": {}}
    return spec_from_dict(doc)


# --- storage and study --------------------------------------------------------------


def open_storage(url: str, heartbeat: Heartbeat | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from a journal file path or an RDB URL.

    With ``heartbeat`` (RDB only), a running trial's worker reports every
    ``interval`` seconds; a trial silent for ``grace`` seconds is marked FAIL by
    the next worker that looks and queued to run again (up to ``retries`` times).
    """
    try:
        if "://" in url:
            if heartbeat is None:
                return optuna.storages.RDBStorage(url, heartbeat_interval=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=heartbeat.interval,
                    grace_period=heartbeat.grace,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=heartbeat.retries
                    ),
                )
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except ImportError as exc:  # optuna hides the missing driver's name in the cause
        cause = exc.__cause__ or exc
        raise SweepError(
            f"optuna storage {redact(url)!r}: its database driver is not installed ({cause}); "
            "for PostgreSQL: pip install 'runway[team]' and use postgresql+psycopg://"
        ) from exc
    except Exception as exc:  # whatever the driver raises, the URL is the problem
        message = f"optuna storage {redact(url)!r} cannot be opened: {redact_text(str(exc))}"
        raise SweepError(message.splitlines()[0]) from exc


def has_heartbeats(study: optuna.Study) -> bool:
    """True when dead workers' trials are found and retried (an RDB study with heartbeats)."""
    return heartbeat_interval(study) is not None


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between the storage's heartbeats (None: none); asked, as Optuna caches RDBs."""
    ask = getattr(study._storage, "get_heartbeat_interval", None)
    return ask() if callable(ask) else None


def reap_stale(study: optuna.Study) -> None:
    """Mark the trials of workers whose heartbeat stopped FAIL, and queue them again."""
    if has_heartbeats(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def counted(study: optuna.Study) -> int:
    """How many trials count towards the study's target (:func:`evaluated`)."""
    return len(evaluated(study))


def target(study: optuna.Study, default: int) -> int:
    """How many trials the study's owner asked for (``default`` before it said)."""
    return int(study.user_attrs.get(TARGET_ATTR, default))


class StopAtTarget:
    """An ``optimize`` callback: stop this worker once the study has its trials, whoever ran them."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if counted(study) >= self.total:
            study.stop()


def redact(url: str) -> str:
    """A storage URL without its password, for tags and messages (:func:`runway.net.redact_url`)."""
    return redact_url(url)


def default_study_name(spec: ExperimentSpec) -> str:
    """Same spec, same study: what ``--resume`` finds again.

    The trial count and time budget are left out of the hash, so a resumed sweep
    may ask for more trials or time than the first attempt.
    """
    doc = spec.model_dump(mode="json")
    doc["sweep"].pop("trials")
    doc["sweep"].pop("timeout")
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return f"{spec.experiment}-{digest[:10]}"


def sampler_seed(spec: ExperimentSpec) -> int:
    """The TPE seed: ``sweep.seed``, else ``split.seed``."""
    sweep = sweep_of(spec)
    return sweep.seed if sweep.seed is not None else spec.split.seed


def _sampler(spec: ExperimentSpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=sampler_seed(spec) if seed is None else seed)


def reseed(study: optuna.Study, spec: ExperimentSpec, seed: int) -> None:
    """Give ``study`` the spec's sampler with ``seed`` (a resumed owner's, :mod:`workers`)."""
    study.sampler = _sampler(spec, seed)


def _pruner(spec: ExperimentSpec) -> optuna.pruners.BasePruner:
    if sweep_of(spec).pruning:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def load_study(
    spec: ExperimentSpec, storage: Any, name: str, seed: int | None = None
) -> optuna.Study:
    """An existing study, with the spec's sampler (a worker's ``seed``) and pruner."""
    return optuna.load_study(
        study_name=name, storage=storage, sampler=_sampler(spec, seed), pruner=_pruner(spec)
    )


def open_study(spec: ExperimentSpec, store: Any, name: str, resume: bool, url: str) -> optuna.Study:
    """Create the study, or continue it with ``resume``; an existing one is refused otherwise."""
    try:
        existing = {s.study_name: s for s in optuna.get_all_study_summaries(store)}
    except Exception as exc:  # a storage that opened lazily fails here
        message = f"optuna storage {redact(url)!r} cannot be read: {redact_text(str(exc))}"
        raise SweepError(message.splitlines()[0]) from exc
    if name in existing and not resume:
        done = existing[name].n_trials
        raise SweepError(
            f"study {name!r} already exists in {redact(url)} ({done} trials); "
            "pass --resume to continue it or --study-name NAME to start another"
        )
    if resume and name not in existing:
        log.warning("no study %r in %s yet: starting it", name, redact(url))
    study = optuna.create_study(
        study_name=name,
        storage=store,
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        direction=spec.primary_metric.direction,
        load_if_exists=True,
    )
    study.set_user_attr(SPEC_HASH_ATTR, spec.spec_hash())
    study.set_user_attr(KEY_ATTR, default_study_name(spec))
    return study


def load_existing(
    spec: ExperimentSpec, store: Any, name: str, url: str, seed: int | None = None
) -> optuna.Study:
    """A running study another machine started (``--join``), checked to be of ``spec``."""
    try:
        study = load_study(spec, store, name, seed)
    except KeyError as exc:
        raise SweepError(
            f"no study {name!r} in {redact(url)}; start the sweep first (runway sweep SPEC on "
            "any machine, same RUNWAY_OPTUNA_STORAGE), then --join it"
        ) from exc
    key = study.user_attrs.get(KEY_ATTR)
    if key is not None and key != default_study_name(spec):
        raise SweepError(
            f"study {name!r} was started from a different spec (search space, data or "
            "split differ); join it with the spec file its owner used"
        )
    if PARENT_ATTR not in study.user_attrs:
        raise SweepError(f"study {name!r} has no parent run yet; its owner is still starting")
    return study


def fail_running(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a killed sweep become FAIL (marked interrupted); returns their
    numbers. With heartbeats only a dead worker's are, queued again: live ones are never touched."""
    if has_heartbeats(study):
        before = {t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL}
        reap_stale(study)
        after = {t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL}
        return sorted(after - before)
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:
        mark_interrupted(study._storage, trial._trial_id)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return [t.number for t in stale]


def mark_interrupted(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    """The trial did not evaluate its parameters (a kill, SIGTERM, an outage): not counted."""
    storage.set_trial_system_attr(trial_id, INTERRUPTED_ATTR, True)


def evaluated(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that ran to an end (complete, pruned or failed), not those a kill interrupted.

    An interrupted trial never evaluated its parameters, so it does not count
    toward ``--trials``: a resumed sweep runs it again as a new trial. Nor does
    a dead worker's trial that was queued again (its retry counts instead).
    """
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in (t.system_attrs.get("retry_history") or [])}
    return [
        t
        for t in trials
        if t.state in FINISHED_STATES
        and not t.system_attrs.get(INTERRUPTED_ATTR)
        and not (t.state == TrialState.FAIL and t.number in retried)
    ]


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name, states with none left out."""
    tally = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        tally[t.state.name] += 1
    return {k: v for k, v in tally.items() if v}


def best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed trial, if there is one."""
    try:
        return study.best_trial
    except ValueError:
        return None


class Progress:
    """One short line per finished trial: trial, value, best so far, ETA.

    Never a bar: a bar carrying the best params shrank to one character and was
    cut at 120 columns, and log lines landed on it. The best params are in the
    summary the command prints at the end.
    """

    def __init__(self, total: int, done: int, metric: str):
        self.total, self.metric, self.last, self.first = total, metric, done, done
        self.started = time.monotonic()

    def update(self, study: optuna.Study) -> None:
        """Report trials finished since the last call (one line for the latest)."""
        trials = evaluated(study)
        done = len(trials)
        if done == self.last:
            return
        latest = max(trials, key=lambda t: t.number)
        value = f"{latest.value:.4f}" if latest.value is not None else latest.state.name.lower()
        top = best(study)
        so_far = f"{top.value:.4f} (#{top.number})" if top and top.value is not None else "-"
        log.info(
            "trial %d/%d  #%d %s=%s  best %s  ETA %s",
            done,
            self.total,
            latest.number,
            self.metric,
            value,
            so_far,
            self._eta(done),
        )
        self.last = done

    def _eta(self, done: int) -> str:
        """The time left at this run's pace so far (trials of earlier runs excluded)."""
        ran = done - self.first
        left = max(self.total - done, 0)
        if ran <= 0 or not left:
            return "0s" if not left else "?"
        seconds = int((time.monotonic() - self.started) / ran * left)
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"

    def close(self) -> None:
        """Nothing to close (kept for callers)."""
