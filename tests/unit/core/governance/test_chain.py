"""The audit chain, pure: seals, links, forks and the replay of what each version should be."""

from __future__ import annotations

from runway.core.governance.chain import HMAC_SHA256, SHA256, Link, VersionState, seal, verify


def _chain(*steps: dict[str, str], key: bytes = b"") -> list[Link]:
    links, prev = [], ""
    for n, step in enumerate(steps):
        fields = {"model": "m", "outcome": "applied", "prev": prev, "time": str(n), **step}
        kind, digest = seal(fields, key)
        links.append(Link(f"r{n}", fields, digest, kind))
        prev = digest
    return links


PROMOTE_1 = (
    {"version": "1", "to_stage": "Staging", "actor": "ci"},
    {"version": "1", "to_stage": "Production", "actor": "alice"},
)


def _v(version: str, stage: str, approved: str | None = None, aliases=()) -> VersionState:
    tags = {"runway.stage": stage, **({"approved_by": approved} if approved else {})}
    return VersionState(version, stage, "", tags, tuple(aliases))


def test_a_seal_covers_every_field_and_the_key_changes_it():
    fields = {"model": "m", "version": "1", "actor": "alice", "prev": ""}
    kind, digest = seal(fields)
    assert kind == SHA256 and seal(dict(fields)) == (kind, digest)
    assert seal({**fields, "actor": "mallory"})[1] != digest
    assert seal({**fields, "prev": "x"})[1] != digest
    keyed = seal(fields, b"secret")
    assert keyed[0] == HMAC_SHA256 and keyed[1] not in (digest, seal(fields, b"other")[1])


def test_an_intact_chain_explains_production_and_its_alias():
    report = verify(_chain(*PROMOTE_1), [_v("1", "Production", "alice", ["production"])])
    assert report.ok and report.order == ["r0", "r1"]


def test_a_replacement_archives_the_old_champion_and_rollback_restores_it():
    links = _chain(
        *PROMOTE_1,
        {"version": "2", "to_stage": "Staging"},
        {"version": "2", "to_stage": "Production", "actor": "bob", "replaced": "1"},
        {"version": "1", "to_stage": "Production", "actor": "alice", "replaced": "2",
         "action": "rollback"},
    )  # fmt: skip
    versions = [_v("1", "Production", "alice", ["production"]), _v("2", "Archived", "bob")]
    assert verify(links, versions).ok
    wrong = [_v("1", "Archived", "alice"), _v("2", "Production", "bob", ["production"])]
    assert set(verify(links, wrong).versions) == {"1", "2"}


def test_refused_records_change_nothing():
    links = _chain(*PROMOTE_1, {"version": "2", "to_stage": "Staging", "outcome": "refused"})
    assert verify(links, [_v("1", "Production", "alice"), _v("2", "None")]).ok


def test_a_fork_and_a_missing_link_are_reported():
    a, b = _chain(*PROMOTE_1)
    twin = Link("r9", b.fields, b.digest, b.kind)  # a second record after r0
    forked = verify([a, b, twin], [_v("1", "Staging")])
    assert "forks" in forked.records["r1"] and "forks" in forked.records["r9"]
    assert forked.order == ["r0"]
    gap = verify([b], [_v("1", "Production", "alice")])
    assert "not reachable" in gap.records["r1"]
    assert "the audit chain says None" in gap.versions["1"]


def test_an_applied_record_off_the_chain_is_not_believed():
    (link,) = _chain({"version": "1", "to_stage": "Production", "actor": "mallory"})
    off = Link(link.record_id, link.fields, link.digest, link.kind, chained=False)
    report = verify([off], [_v("1", "Production", "mallory")])
    assert "off the chain" in report.records["r0"] and "1" in report.versions
