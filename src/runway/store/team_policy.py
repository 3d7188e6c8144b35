"""The team's promotion policy, kept on the tracking server: ``<model>.runway-policy``.

In team mode a promotion must apply the policy the team agreed on, not the
promoter's copy of ``registry/<model>.yaml``. It lives in the tags of a
registered model of its own (a tag on the model itself is writable with EDIT,
which every author holds): the YAML text (in chunks, a tag value holds
:data:`MAX_TAG_CHARS`) and the sha256 of the validated policy. Only a MANAGE
grant on ``<model>.runway-policy`` (reviewers, see :mod:`runway.team.grants`)
may write it; authors and the service account may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from runway.errors import PermissionDenied, RegistryError
from runway.store.http import explain
from runway.store.identity import whoami
from runway.store.registry import POLICY_SUFFIX
from runway.store.tracking import MAX_TAG_CHARS, client

TEXT_TAG = "runway.policy.text."  # + chunk index
CHUNKS_TAG = "runway.policy.chunks"
HASH_TAG = "runway.policy.sha256"


@dataclass(frozen=True)
class StoredPolicy:
    """The team's policy as the server holds it."""

    text: str
    sha256: str


def holder(model: str) -> str:
    """The registered model whose tags hold ``model``'s team policy."""
    return f"{model}{POLICY_SUFFIX}"


def stored(model: str) -> StoredPolicy | None:
    """The policy stored for ``model`` on the server, or None when none was pushed."""
    try:
        found = client().get_registered_model(holder(model))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise RegistryError(f"cannot read {holder(model)}: {explain(exc) or exc}") from exc
    tags = dict(found.tags or {})
    if HASH_TAG not in tags or CHUNKS_TAG not in tags:
        return None
    count = int(tags[CHUNKS_TAG])
    text = "".join(tags.get(f"{TEXT_TAG}{i}", "") for i in range(count))
    return StoredPolicy(text, tags[HASH_TAG])


def push(model: str, text: str, sha256: str) -> None:
    """Store ``text`` (already validated, hash ``sha256``) as ``model``'s team policy.

    Raises:
        PermissionDenied: no MANAGE grant on the holder model (exit 14).
    """
    name = holder(model)
    mlflow_client = client()
    chunks = [text[i : i + MAX_TAG_CHARS] for i in range(0, len(text), MAX_TAG_CHARS)] or [""]
    try:
        try:
            mlflow_client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            mlflow_client.create_registered_model(
                name, description=f"runway: the promotion policy the team agreed on for {model}"
            )
        # the hash goes last: a reader never pairs a new hash with old text
        if HASH_TAG in (mlflow_client.get_registered_model(name).tags or {}):
            mlflow_client.delete_registered_model_tag(name, HASH_TAG)
        for i, chunk in enumerate(chunks):
            mlflow_client.set_registered_model_tag(name, f"{TEXT_TAG}{i}", chunk)
        mlflow_client.set_registered_model_tag(name, CHUNKS_TAG, str(len(chunks)))
        mlflow_client.set_registered_model_tag(name, HASH_TAG, sha256)
    except MlflowException as exc:
        found = explain(exc)
        if isinstance(found, PermissionDenied):
            raise PermissionDenied(
                f"permission denied: {whoami().user} may not change the team policy of {model}: "
                f"pushing it needs a MANAGE grant on {name} (a reviewer's or an admin's)"
            ) from None
        raise found or RegistryError(
            f"cannot store the team policy of {model} in {name}: {exc.message.splitlines()[0]}"
        ) from exc
