"""The audit trail's hash chain (alerting/audit.py): every kind of tampering is found, at its record."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from alerting.audit import Chain, mac_of, verify
from models import schemas
from models.schemas import AuditRecord

KEY = b"audit-key-for-unit-tests-0123456789"
T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)


def trail(n: int = 6) -> list[AuditRecord]:
    chain, out = Chain(KEY), []
    for i in range(n):
        linked = chain.link(AuditRecord(action="alert-ack", by=f"officer-{i % 2}", at=T0 + timedelta(minutes=i),
                                        target=f"gas-level-1:gas-00{i}"))
        chain.follow(linked)
        out.append(linked)
    return out


def as_kafka(records: list[AuditRecord], first_offset: int = 0) -> list[tuple[int, bytes]]:
    return [(first_offset + i, schemas.encode(r)) for i, r in enumerate(records)]


def test_an_intact_trail_verifies():
    records = trail()
    n, head, broken = verify(as_kafka(records), KEY)
    assert (n, head, broken) == (6, records[-1].mac, None)
    assert [r.seq for r in records] == list(range(6)) and records[0].prev == "genesis"
    assert all(b.prev == a.mac for a, b in zip(records, records[1:]))


def test_an_altered_record_is_named():
    records = trail()
    records[3] = msgspec.structs.replace(records[3], by="chief-inspector")
    _, _, broken = verify(as_kafka(records), KEY)
    assert (broken.offset, broken.seq) == (3, 3) and "does not match its mac" in broken.why


def test_removed_first_records_are_found():  # delete_records moves the log's start
    records = trail()
    _, _, broken = verify(as_kafka(records[2:], first_offset=2), KEY)
    assert (broken.offset, broken.seq) == (2, 2) and "missing" in broken.why


def test_a_record_removed_from_the_middle_is_found():
    records = trail()
    _, _, broken = verify(as_kafka(records[:2] + records[3:]), KEY)
    assert broken.seq == 3 and "missing" in broken.why


def test_a_forged_record_without_the_key_is_found():
    records = trail()
    forged = Chain(b"a-guessed-key-not-the-real-one-000")  # continues the chain, but with another key
    forged.follow(records[-1])
    backdated = forged.link(AuditRecord(action="watchlist-delete-persons", by="chief-inspector",
                                        at=T0 - timedelta(days=3), target="p-17"))
    _, _, broken = verify(as_kafka(records + [backdated]), KEY)
    assert (broken.offset, broken.seq) == (6, 6) and "written without the audit key" in broken.why


def test_an_inserted_or_repeated_record_is_found():
    records = trail()
    _, _, broken = verify(as_kafka(records[:4] + [records[3]] + records[4:]), KEY)
    assert broken.offset == 4 and "repeated" in broken.why
    unchained = AuditRecord(action="alert-ack", by="x", at=T0, target="y")  # seq -1: written around the chain
    _, _, broken = verify(as_kafka(records[:2] + [unchained] + records[2:]), KEY)
    assert broken.offset == 2


def test_the_mac_covers_every_field():
    r = trail(1)[0]
    for field, value in (("detail", "x"), ("count", 5), ("sha256", "ab"), ("request_id", "r"), ("at", T0)):
        assert mac_of(msgspec.structs.replace(r, **{field: value}), KEY) != r.mac or getattr(r, field) == value


@pytest.mark.parametrize("value", [b"not json", b"{}"])
def test_garbage_in_the_trail_is_a_broken_link(value):
    records = trail(2)
    _, _, broken = verify(as_kafka(records) + [(2, value)], KEY)
    assert broken.offset == 2 and "not an audit record" in broken.why
