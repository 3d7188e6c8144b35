"""The grants each role needs on an authenticating MLflow server: the one table.

The README's "grants per role" table is this one (a test keeps them equal).
``{model}`` is the registered model, ``{experiment}`` the experiment its runs
live in, ``{audit}`` the promotion audit experiment (``RUNWAY_AUDIT_EXPERIMENT``).

Grants for promoting sit on an admin-made role per model, ``runway-promote-{model}``: MLflow
removes every user's grant on a registered model when it is deleted, and the
promotion lock ``{model}.runway-lock`` is deleted at each release; a grant on a
role an admin made is kept, so whoever holds the lock can always renew and
release it, and break a dead holder's lock, whoever created it.

The team's promotion policy lives in ``{model}.runway-policy``, which the admin
creates when granting (MLflow gives whoever creates a registered model MANAGE on
it, and the server's default permission is NO_PERMISSIONS): reviewers may change
it (MANAGE), authors and the service account only read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from runway.store.access import Admin

PROMOTERS = "runway-promote-{model}"
POLICY = "{model}.runway-policy"  # the team's promotion policy (store/team_policy)


@dataclass(frozen=True)
class Grant:
    """One permission on one resource, and why the role needs it."""

    resource_type: str  # experiment | registered_model
    resource: str  # a template: {model}, {experiment}, {audit}
    permission: str  # READ | USE | EDIT | MANAGE
    why: str
    via_role: bool = False  # on the runway-promote-{model} role rather than the user


_PROMOTE = (
    Grant("experiment", "{audit}", "EDIT", "record every promotion attempt", via_role=True),
    Grant(
        "registered_model",
        "{model}.runway-lock",
        "MANAGE",
        "take, renew and release the promotion lock (deleting it needs MANAGE)",
        via_role=True,
    ),
)

ROLES: dict[str, tuple[Grant, ...]] = {
    "author": (
        Grant("experiment", "{experiment}", "EDIT", "create runs: train, sweep, join a sweep"),
        Grant("registered_model", "{model}", "EDIT", "register new versions"),
        Grant("registered_model", POLICY, "READ", "read the team's policy a promotion applies"),
        *_PROMOTE,
    ),
    "reviewer": (
        Grant("experiment", "{experiment}", "READ", "read the candidate's spec and model (gates)"),
        Grant(
            "registered_model",
            "{model}",
            "MANAGE",
            "move stages, tag versions, move aliases (removing @staging needs MANAGE)",
        ),
        Grant(
            "registered_model",
            POLICY,
            "MANAGE",
            "change the team's promotion policy (`runway registry policy push`)",
        ),
        *_PROMOTE,
    ),
    "service": (
        Grant("experiment", "{experiment}", "READ", "download the model and its data contract"),
        Grant("registered_model", "{model}", "READ", "resolve the version, read its input policy"),
        Grant(
            "experiment",
            "{audit}",
            "READ",
            "check the audit chain: serve and score load only a Production it explains",
        ),
        Grant("registered_model", POLICY, "READ", "read the team's promotion policy"),
    ),
}


def resources(model: str, experiment: str, audit: str) -> dict[str, str]:
    """Template values for one model."""
    return {"model": model, "experiment": experiment, "audit": audit}


def apply(admin: Admin, role: str, user: str, names: dict[str, str]) -> list[str]:
    """Give ``user`` what ``role`` needs for one model; one line per grant."""
    lines = []
    promoters: int | None = None
    policy = POLICY.format(**names)
    if admin.ensure_model(
        policy, f"runway: the promotion policy the team agreed on for {names['model']}"
    ):
        lines.append(f"created registered model {policy} (owned by the admin)")
    for grant in ROLES[role]:
        name = grant.resource.format(**names)
        key = admin.experiment_id(name) if grant.resource_type == "experiment" else name
        if grant.via_role:
            if promoters is None:
                promoters = admin.role(
                    PROMOTERS.format(**names), f"runway: promote {names['model']} (lock, audit)"
                )
                admin.assign(user, promoters)
            admin.role_grant(promoters, grant.resource_type, key, grant.permission)
            holder = f"role {PROMOTERS.format(**names)}"
        else:
            held = admin.grant(user, grant.resource_type, key, grant.permission)
            holder = user if held == grant.permission else f"{user} (holds {held})"
        lines.append(f"{grant.permission:<6} {grant.resource_type} {name}  {holder}: {grant.why}")
    return lines


def markdown() -> list[str]:
    """The grants table as the README shows it (a test keeps the two equal)."""
    lines = ["| role | permission | on | why |", "| --- | --- | --- | --- |"]
    for role, needed in ROLES.items():
        for grant in needed:
            where = f"{grant.resource_type} `{grant.resource}`"
            if grant.via_role:
                where += f" (role `{PROMOTERS}`)"
            lines.append(f"| {role} | {grant.permission} | {where} | {grant.why} |")
    return lines
