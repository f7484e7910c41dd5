"""The content-addressed bill store: new, unchanged and changed versions."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import threading
from contextlib import closing
from pathlib import Path

import pytest

from payrecon.fetch.store import BillStore
from tests.unit.fetch.helpers import DAY, FETCHED_AT, fetched


@pytest.fixture
def store(tmp_path: Path) -> BillStore:
    return BillStore(tmp_path / "bills")


def test_a_new_bill_is_stored_by_its_sha256_with_provenance(store: BillStore) -> None:
    stored = store.put(fetched(store.staging, b"bill v1"))

    sha = hashlib.sha256(b"bill v1").hexdigest()
    assert stored.status == "new" and not stored.changed and stored.version == 1
    assert stored.path == store.root / "objects" / sha[:2] / sha
    assert stored.path.read_bytes() == b"bill v1"
    assert not stat.S_IMODE(stored.path.stat().st_mode) & 0o222  # read-only
    assert list(store.staging.iterdir()) == []
    [listed] = store.versions("wechat", "1601959334", DAY, "ALL")
    assert (listed.sha256, listed.size, listed.provenance) == (sha, 7, stored.provenance)
    assert listed.provenance.fetched_at == FETCHED_AT


def test_the_same_file_again_is_a_no_op(store: BillStore) -> None:
    first = store.put(fetched(store.staging, b"bill v1"))

    again = store.put(fetched(store.staging, b"bill v1"))

    assert again.status == "unchanged" and not again.changed
    assert (again.path, again.version, again.previous_sha256) == (first.path, 1, None)
    assert len(store.versions("wechat", "1601959334", DAY, "ALL")) == 1
    assert list(store.staging.iterdir()) == []


def test_a_changed_file_is_a_new_version_flagged_with_the_previous_hash(
    store: BillStore,
) -> None:
    first = store.put(fetched(store.staging, b"bill v1"))

    second = store.put(fetched(store.staging, b"bill v2, corrected"))

    assert second.changed and second.status == "changed" and second.version == 2
    assert second.previous_sha256 == first.sha256
    assert first.path.read_bytes() == b"bill v1"  # the earlier version stays
    assert [v.sha256 for v in store.versions("wechat", "1601959334", DAY, "ALL")] == [
        first.sha256,
        second.sha256,
    ]
    [latest] = store.bills("wechat", "1601959334", DAY)
    assert latest.sha256 == second.sha256


def test_going_back_to_earlier_content_is_another_change(store: BillStore) -> None:
    first = store.put(fetched(store.staging, b"bill v1"))
    second = store.put(fetched(store.staging, b"bill v2"))

    third = store.put(fetched(store.staging, b"bill v1"))

    assert (third.status, third.version, third.previous_sha256) == ("changed", 3, second.sha256)
    assert third.path == first.path  # one object for both versions


def test_bills_are_kept_apart_by_type_merchant_and_day(store: BillStore) -> None:
    store.put(fetched(store.staging, b"same bytes"))
    others = [
        store.put(fetched(store.staging, b"same bytes", bill_type="SUCCESS")),
        store.put(fetched(store.staging, b"same bytes", merchant="1900000109")),
    ]

    assert [bill.status for bill in others] == ["new", "new"]
    assert len(list((store.root / "objects").rglob("*"))) == 2  # one dir, one object
    assert [b.provenance.bill_type for b in store.bills("wechat", "1601959334", DAY)] == [
        "ALL",
        "SUCCESS",
    ]


def test_concurrent_puts_of_one_bill_make_one_version(store: BillStore) -> None:
    files = [fetched(store.staging, b"bill v1") for _ in range(8)]
    results = []
    threads = [threading.Thread(target=lambda f=f: results.append(store.put(f))) for f in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.status for r in results) == ["new"] + ["unchanged"] * 7
    with closing(sqlite3.connect(store.index)) as db:
        assert db.execute("SELECT COUNT(*) FROM bill_versions").fetchone() == (1,)
