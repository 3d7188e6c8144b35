"""Whether a study's workers send heartbeats: asked of the storage Optuna wraps, not its type."""

from __future__ import annotations

import warnings

import optuna

from runway.jobs import study as studies


def test_an_rdb_study_with_heartbeats_is_seen_through_optunas_cache(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        beating = optuna.storages.RDBStorage(
            f"sqlite:///{tmp_path / 'a.db'}", heartbeat_interval=1, grace_period=4
        )
    study = optuna.create_study(storage=beating, study_name="a")
    assert not isinstance(study._storage, optuna.storages.RDBStorage)  # Optuna's cache
    assert studies.has_heartbeats(study) and studies.heartbeat_interval(study) == 1

    silent = optuna.create_study(
        storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'b.db'}"), study_name="b"
    )
    assert not studies.has_heartbeats(silent)
