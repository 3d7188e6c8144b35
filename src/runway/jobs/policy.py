"""Which promotion policy a promotion applies: the team's on a tracking server, else the file.

On the embedded local store the policy is ``registry/<model>.yaml`` (or
``--policy``), as it always was. In team mode (the tracking URI is an http(s)
server) the promoter's disk is not trusted: an author could add herself to the
reviewers or lift a gate in her copy. The policy is the one a reviewer stored
on the server (:mod:`runway.store.team_policy`, ``runway registry policy
push``); a local file that says something else is refused, so nobody promotes
believing a policy that is not the one applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runway.core.governance.policy import (
    PromotionPolicy,
    parse_policy,
    policy_path,
    policy_sha256,
    read_policy,
)
from runway.errors import AuditUnverified, RegistryError, SpecError
from runway.settings import Settings, is_server_url
from runway.store import team_policy


@dataclass(frozen=True)
class Applied:
    """The policy a promotion applies, its hash, and where it came from."""

    policy: PromotionPolicy
    sha256: str
    source: str


def team_mode(settings: Settings) -> bool:
    """True when the tracking store is a server the team shares (http or https)."""
    return is_server_url(settings.tracking_uri)


def applied_policy(
    model: str, settings: Settings, policy_file: str | Path | None = None
) -> Applied:
    """The policy that judges a promotion of ``model`` (see the module docstring).

    Raises:
        SpecError: the file (local store) is missing or invalid.
        RegistryError: team mode with no stored policy, or a local file that differs.
        AuditUnverified: the stored policy's text does not match its hash.
    """
    if not team_mode(settings):
        policy = read_policy(model, settings.registry_dir, policy_file)
        source = str(policy_file or policy_path(model, settings.registry_dir))
        return Applied(policy, policy_sha256(policy), source)
    push = _push_hint(model, f"registry/{model}.yaml")
    found = team_policy.stored(model)
    if found is None:
        raise RegistryError(
            f"{model} has no team policy on the tracking server ({team_policy.holder(model)}); "
            f"promotions in team mode apply only the team's policy: {push}"
        )
    where = f"{team_policy.holder(model)} on the tracking server"
    policy = parse_policy(found.text, where)
    if policy.model != model:
        raise SpecError(f"{where}: model: policy is for {policy.model!r}, not {model!r}")
    if policy_sha256(policy) != found.sha256:
        raise AuditUnverified(
            f"{where}: the stored policy does not match its sha256 (changed outside runway); {push}"
        )
    local = Path(policy_file) if policy_file else policy_path(model, settings.registry_dir)
    if policy_file or local.is_file():
        mine = read_policy(model, settings.registry_dir, policy_file)
        if policy_sha256(mine) != found.sha256:
            raise RegistryError(
                f"{local} differs from the team's policy of {model} (sha256 {found.sha256[:12]}, "
                f"`runway registry policy show {model}`); promotions apply the team's policy: "
                f"to change it, {_push_hint(model, str(local))}"
            )
    return Applied(policy, found.sha256, where)


def _push_hint(model: str, path: str) -> str:
    return f"a reviewer runs `runway registry policy push {model} --file {path}`"


def push_policy(model: str, settings: Settings, policy_file: str | Path | None = None) -> str:
    """Validate the file and store it as ``model``'s team policy; its sha256."""
    source = Path(policy_file) if policy_file else policy_path(model, settings.registry_dir)
    policy = read_policy(model, settings.registry_dir, source)
    digest = policy_sha256(policy)
    team_policy.push(model, source.read_text(encoding="utf-8"), digest)
    return digest


def show_policy(model: str) -> team_policy.StoredPolicy:
    """The team policy stored for ``model``.

    Raises:
        RegistryError: none was pushed.
    """
    found = team_policy.stored(model)
    if found is None:
        raise RegistryError(
            f"{model} has no team policy on the tracking server ({team_policy.holder(model)}); "
            f"a reviewer stores it with `runway registry policy push {model}`"
        )
    return found
