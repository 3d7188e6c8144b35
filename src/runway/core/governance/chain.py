"""The audit chain: each record sealed with a hash of its fields and of the record before it.

Pure: records and versions in, problems out. :mod:`runway.store.audit` seals
records as it writes them; :func:`verify` checks the links (nothing altered,
removed, inserted or forked) and replays the applied records in chain order to
say what every version's stage, aliases and approval should be, so a stage or
an ``approved_by`` tag written straight into the store (the MLflow UI, a REST
call) shows up as not explained by the chain.

With a key (``RUNWAY_AUDIT_KEY``) the seal is an HMAC-SHA256, which nobody
without the key can compute; without one it is a plain SHA-256, which shows
edits to past records but not a forged record appended by someone who knows
this format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

# The sealed fields of a record, in the canonical document's order (sorted anyway).
FIELDS = (
    "model",
    "version",
    "source",
    "source_run_id",
    "action",
    "from_stage",
    "to_stage",
    "outcome",
    "actor",
    "comment",
    "replaced",
    "reason",
    "time",
    "prev",
)
# Sealed only when a record has them, so chains written before they existed still verify:
# the sha256 of the promotion policy applied, and of the ONNX graph a twin's gates checked.
OPTIONAL_FIELDS = ("policy_sha256", "onnx_sha256")
POLICY_HASH_TAG = "runway.policy.sha256"  # the applied policy's hash, on the version
SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"
ALIASES = {"Staging": "staging", "Production": "production"}
STAGE_TAG = "runway.stage"  # the stage runway last set on a version
APPROVED_BY = "approved_by"
_ROLLED_BACK = "rolled back: "  # key prefix in the replay's approver map


def seal(fields: Mapping[str, str], key: bytes = b"") -> tuple[str, str]:
    """(kind, hex digest) of a record's sealed fields: HMAC-SHA256 with ``key``, else SHA-256."""
    sealed = {k: str(fields.get(k, "")) for k in FIELDS}
    sealed |= {k: str(fields[k]) for k in OPTIONAL_FIELDS if fields.get(k)}
    doc = json.dumps(sealed, sort_keys=True).encode()
    if key:
        return HMAC_SHA256, hmac.new(key, doc, hashlib.sha256).hexdigest()
    return SHA256, hashlib.sha256(doc).hexdigest()


@dataclass(frozen=True)
class Link:
    """One audit record as stored: its fields, its seal and whether it is on the chain."""

    record_id: str
    fields: Mapping[str, str]
    digest: str
    kind: str
    chained: bool = True

    @property
    def prev(self) -> str:
        """The digest of the record before it ("" for the first)."""
        return self.fields.get("prev", "")


@dataclass(frozen=True)
class VersionState:
    """A registered version as the registry has it now."""

    version: str
    stage: str
    source: str
    tags: Mapping[str, str]
    aliases: tuple[str, ...] = ()


@dataclass
class ChainReport:
    """What :func:`verify` found: problems per record, per version, and the intact order."""

    records: dict[str, str] = field(default_factory=dict)  # record id -> problem
    versions: dict[str, str] = field(default_factory=dict)  # version -> problem
    order: list[str] = field(default_factory=list)  # record ids of the intact chain
    # the version the intact chain puts in Production, if the registry still has it with
    # the source its approval sealed: what serving keeps loading when the registry's
    # Production is one the chain does not explain ("" when there is none)
    champion: str = ""

    @property
    def ok(self) -> bool:
        """True when every record checks and every version is explained."""
        return not self.records and not self.versions


def verify(links: list[Link], versions: list[VersionState], key: bytes = b"") -> ChainReport:
    """Check the links, replay the intact chain, and compare the registry with it."""
    report = ChainReport()
    chain = _intact(links, key, report)
    report.order = [link.record_id for link in chain]
    expected, approver, sources = _replay(chain)
    policies = _applied_policies(chain)
    for mv in versions:
        problem = _version_problem(mv, expected, approver, sources, versions)
        problem = problem or _policy_problem(mv, policies)
        if problem:
            report.versions[mv.version] = problem
        if expected.get(mv.version) == "Production" and sources.get(mv.version) == mv.source:
            report.champion = mv.version
    return report


def _intact(links: list[Link], key: bytes, report: ChainReport) -> list[Link]:
    """The chain from its first record while every link checks; problems noted on the way."""
    chained = [link for link in links if link.chained]
    for link in links:
        if not link.chained and link.fields.get("outcome") == "applied":
            report.records[link.record_id] = "an applied record off the chain"
    valid: dict[str, Link] = {}
    for link in chained:
        problem = _seal_problem(link, key)
        if problem:
            report.records[link.record_id] = problem
        else:
            valid[link.record_id] = link
    following: dict[str, list[Link]] = {}
    for link in chained:
        following.setdefault(link.prev, []).append(link)
    order: list[Link] = []
    prev = ""
    while True:
        nexts = following.get(prev, [])
        if not nexts:
            break
        if len(nexts) > 1:
            for link in nexts:
                report.records.setdefault(
                    link.record_id, f"the chain forks here ({len(nexts)} records follow one)"
                )
            break
        link = nexts[0]
        if link.record_id not in valid:
            break
        order.append(link)
        prev = link.digest
    reached = {link.record_id for link in order}
    for link in chained:
        if link.record_id not in reached and link.record_id not in report.records:
            report.records[link.record_id] = (
                "not reachable from the first record (one before it is missing or altered)"
            )
    return order


def _seal_problem(link: Link, key: bytes) -> str:
    if not link.digest:
        return "not sealed (written before runway chained its audit records, or forged)"
    if link.kind == HMAC_SHA256 and not key:
        return "sealed with a key; set RUNWAY_AUDIT_KEY to verify it"
    if key and link.kind != HMAC_SHA256:
        return "not sealed with RUNWAY_AUDIT_KEY"
    kind, digest = seal(link.fields, key)
    if kind != link.kind or not hmac.compare_digest(digest, link.digest):
        return "altered: its fields do not match its seal"
    return ""


def _replay(chain: list[Link]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Stage per version, Production approver per version, and approved source per version."""
    stage: dict[str, str] = {}
    approver: dict[str, str] = {}
    sources: dict[str, str] = {}
    for link in chain:
        f = link.fields
        if f.get("outcome") != "applied":
            continue
        version, target = f.get("version", ""), f.get("to_stage", "")
        stage[version] = target
        sources[version] = f.get("source", "")
        if target == "Production":
            if f.get("action") == "rollback" and version in approver:
                # a rollback keeps the version's approval; tags written before it did
                # name the rollback's actor, which stays accepted
                approver[_ROLLED_BACK + version] = f.get("actor", "")
            else:
                approver[version] = f.get("actor", "")
            for old in f.get("replaced", "").split(","):
                if old and old != version:
                    stage[old] = "Archived"
    return stage, approver, sources


def _applied_policies(chain: list[Link]) -> dict[str, str]:
    """Per version, the policy hash sealed by the last applied record that has one."""
    policies: dict[str, str] = {}
    for link in chain:
        f = link.fields
        if f.get("outcome") == "applied" and f.get("policy_sha256"):
            policies[f.get("version", "")] = f["policy_sha256"]
    return policies


def _policy_problem(mv: VersionState, policies: dict[str, str]) -> str:
    """A version whose ``runway.policy.sha256`` is not the policy its promotion sealed."""
    sealed = policies.get(mv.version)
    tagged = mv.tags.get(POLICY_HASH_TAG)
    if sealed is None or tagged == sealed:
        return ""
    return (
        f"tag {POLICY_HASH_TAG}={str(tagged)[:12]!r} is not the policy its promotion applied "
        f"(sealed {sealed[:12]})"
    )


def _version_problem(
    mv: VersionState,
    expected: dict[str, str],
    approver: dict[str, str],
    sources: dict[str, str],
    versions: list[VersionState],
) -> str:
    want = expected.get(mv.version, "None")
    if mv.stage != want:
        return f"stage {mv.stage} set outside runway (the audit chain says {want})"
    recorded = mv.tags.get(STAGE_TAG, "None")
    if recorded != want:
        return f"tag runway.stage={recorded!r} set outside runway (the audit chain says {want})"
    approved = mv.tags.get(APPROVED_BY)
    accepted = (approver.get(mv.version), approver.get(_ROLLED_BACK + mv.version))
    if approved is not None and approved not in accepted:
        chain = approver.get(mv.version)
        said = f"{chain!r}" if chain else "no approval"
        return f"tag approved_by={approved!r} set outside runway (the audit chain has {said})"
    if mv.version in sources and sources[mv.version] and sources[mv.version] != mv.source:
        return "its source differs from the one its approval recorded"
    for stage, alias in ALIASES.items():
        holders = [v.version for v in versions if expected.get(v.version, "None") == stage]
        points = alias in mv.aliases
        if points and (not holders or holders[-1] != mv.version):
            return (
                f"alias @{alias} set outside runway (the audit chain puts no {stage} version here)"
            )
    return ""
