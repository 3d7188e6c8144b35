"""Whether a study's workers send heartbeats decides how a dead worker's trial is found."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from runway.jobs import study as studies


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # asked, not optimized
def test_a_dead_workers_trial_is_failed_and_queued_again_when_the_study_beats(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    beat = studies.Heartbeat(interval=1, grace=1, retries=1)
    dead = optuna.create_study(storage=studies.open_storage(url, beat), study_name="a")
    trial = dead.ask()
    dead._storage.record_heartbeat(trial._trial_id)  # its worker beat once, then died
    time.sleep(2.5)  # past the grace period (the store keeps whole seconds)

    study = optuna.load_study(study_name="a", storage=studies.open_storage(url, beat))
    assert studies.has_heartbeats(study) and studies.heartbeat_interval(study) == 1
    assert studies.fail_running(study) == [0]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]  # failed, and queued to run again


def test_without_heartbeats_every_running_trial_is_failed_as_interrupted(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = optuna.create_study(storage=studies.open_storage(url), study_name="b")
    study.ask()

    assert not studies.has_heartbeats(study) and studies.heartbeat_interval(study) is None
    assert studies.fail_running(study) == [0]
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.system_attrs[studies.INTERRUPTED_ATTR] is True
    assert studies.evaluated(study) == []  # an interrupted trial was not an evaluation
