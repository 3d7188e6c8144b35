"""Where the team stack's server writes artifacts, decided without starting anything."""

from __future__ import annotations

from runway.team.config import TeamSettings
from runway.team.stack import Stack, _adopt_saved_bucket


def test_artifacts_go_to_the_stacks_folder_unless_an_s3_endpoint_is_named(tmp_path):
    assert Stack(TeamSettings(dir=tmp_path)).artifacts == str(tmp_path / "artifacts")
    remote = TeamSettings(dir=tmp_path, s3_endpoint="http://minio:9000", bucket="b")
    assert Stack(remote).artifacts == "s3://b/mlflow"


def test_artifacts_an_older_stack_saved_from_moto_become_the_folders(tmp_path):
    saved = tmp_path / "s3" / "mlflow" / "1" / "abc" / "artifacts" / "MLmodel"
    saved.parent.mkdir(parents=True)
    saved.write_text("flavors: {}\n")
    _adopt_saved_bucket(tmp_path)
    assert (tmp_path / "artifacts" / "1" / "abc" / "artifacts" / "MLmodel").is_file()
    _adopt_saved_bucket(tmp_path)  # once only: nothing left to move, nothing overwritten
    assert (tmp_path / "artifacts" / "1" / "abc" / "artifacts" / "MLmodel").is_file()
