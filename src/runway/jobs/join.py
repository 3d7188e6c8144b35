"""``runway sweep SPEC --join``: more workers for a study another machine is running.

The joining machine needs the spec file (the same one), the data it names and
the study's storage (``RUNWAY_OPTUNA_STORAGE``, an RDB such as the team's
PostgreSQL); nothing on the owner's disk. It runs trials as child runs of the
owner's parent run until the study has the trials its owner asked for. It never
marks another worker's trial as failed except by its heartbeat, and it neither
refits nor registers: the study's owner does, once every trial is in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from runway.core.threads import threads_for
from runway.core.training.data import load_dataset, prepare
from runway.core.training.spec import ExperimentSpec
from runway.errors import SweepError
from runway.jobs import study as studies
from runway.jobs import workers as pool
from runway.jobs.study import PARENT_ATTR, sweep_of
from runway.jobs.sweep import _optimize, check_space, heartbeat
from runway.jobs.sweep_parent import SweepContext
from runway.settings import Settings, get_settings
from runway.store import tracking

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinResult:
    """What a joining worker found and left: the study, its parent run, the trial counts."""

    study_name: str
    parent_run_id: str
    target: int
    trials: dict[str, int] = field(default_factory=dict)


def join(
    spec: ExperimentSpec,
    *,
    settings: Settings | None = None,
    workers: int = 1,
    study_name: str | None = None,
    storage: str | None = None,
) -> JoinResult:
    """Run trials of the running study of ``spec`` until it has all it asked for.

    Raises:
        SweepError: no such study yet, a study of another spec, a bad storage.
    """
    if workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    settings = settings or get_settings()
    sweep_of(spec)
    storage_url = storage or settings.optuna_storage
    if "://" not in storage_url:
        log.warning(
            "joining a study in the journal file %s: this works on one machine only, and a "
            "killed worker's trial is not retried (use an RDB storage for that)",
            storage_url,
        )
    name = study_name or studies.default_study_name(spec)
    beat = heartbeat(settings, storage_url)
    store = studies.open_storage(storage_url, beat)
    study = studies.load_existing(spec, store, name, storage_url, pool.seed(spec, pool.joined(0)))
    parent_id = str(study.user_attrs[PARENT_ATTR])
    split = prepare(spec, load_dataset(spec.data))
    check_space(spec, split)
    experiment_id = tracking.run_experiment(parent_id)
    threads = threads_for("sweep", settings.threads, workers)
    ctx = SweepContext(spec, split, experiment_id, parent_id, name, storage_url, threads, beat)
    ctx = replace(ctx, outage_wait=settings.sweep_outage_wait)
    log.info("joining study %r (%s) in parent run %s", name, studies.counts(study), parent_id)
    _optimize(ctx, study, workers, owner=False)
    return JoinResult(
        name, parent_id, studies.target(study, sweep_of(spec).trials), studies.counts(study)
    )
