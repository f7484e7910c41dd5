"""The content-addressed bill store under ``<home>/bills``.

::

    <home>/bills/
      objects/ab/ab12…ef     each distinct file once, named by its SHA-256, read-only
      index.sqlite           one row per version of a bill, with its provenance
      staging/               downloads in progress (same file system: moved atomically)

A bill is identified by (channel, merchant, day, bill_type). Putting a fetched file:

* no version yet: it becomes version 1 (status ``new``);
* the same content as the bill's latest version: nothing changes (``unchanged``), the
  staging file is dropped;
* other content: it is kept as the next version beside the earlier ones (``changed``,
  with the previous version's SHA-256), so a channel that re-publishes a bill is
  noticed and both files stay available for audit.

The index is written in one ``BEGIN IMMEDIATE`` transaction per file, so concurrent
fetches of the same bill cannot both create the same version. The object is moved into
place before its row is written: a crash in between leaves an unreferenced object, never
a row without its file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from payrecon.fetch.base import FetchedFile, Provenance

Status = Literal["new", "unchanged", "changed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bill_versions (
    channel TEXT NOT NULL,
    merchant TEXT NOT NULL,
    day TEXT NOT NULL,
    bill_type TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    previous_sha256 TEXT,
    PRIMARY KEY (channel, merchant, day, bill_type, version)
);
CREATE INDEX IF NOT EXISTS bill_versions_by_sha256 ON bill_versions (sha256);
"""
_COLUMNS = (
    "channel, merchant, day, bill_type, version, sha256, size, name, source, fetched_at,"
    " previous_sha256"
)
_KEY = "channel = ? AND merchant = ? AND day = ? AND bill_type = ?"
_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StoredBill:
    """A bill version in the store, and what putting it did (``status``)."""

    path: Path
    sha256: str
    size: int
    version: int
    name: str
    provenance: Provenance
    status: Status
    previous_sha256: str | None = None  # the version before, when this one differs

    @property
    def changed(self) -> bool:
        """The channel served different content than the bill's previous version."""
        return self.status == "changed"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``payrecon fetch --json``)."""
        origin = self.provenance
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "status": self.status,
            "changed": self.changed,
            "previous_sha256": self.previous_sha256,
            "version": self.version,
            "size": self.size,
            "name": self.name,
            "channel": origin.channel,
            "merchant": origin.merchant,
            "day": origin.day.isoformat(),
            "bill_type": origin.bill_type,
            "source": origin.source,
            "fetched_at": origin.fetched_at.isoformat(),
        }


class BillStore:
    """Fetched bills by SHA-256, with an SQLite index of versions and provenance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "staging"
        self.objects = root / "objects"
        self.index = root / "index.sqlite"

    def path_of(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def put(self, fetched: FetchedFile) -> StoredBill:
        """Store a fetched file (moving its staging file); see the module docstring."""
        try:
            with self._transaction() as db:
                latest = self._latest(db, fetched.provenance)
                if latest is not None and latest.sha256 == fetched.sha256:
                    return replace(latest, status="unchanged", previous_sha256=None)
                self._keep(fetched)
                stored = StoredBill(
                    path=self.path_of(fetched.sha256),
                    sha256=fetched.sha256,
                    size=fetched.size,
                    version=latest.version + 1 if latest else 1,
                    name=fetched.name,
                    provenance=fetched.provenance,
                    status="changed" if latest else "new",
                    previous_sha256=latest.sha256 if latest else None,
                )
                db.execute(
                    f"INSERT INTO bill_versions ({_COLUMNS}) VALUES ({_MARKS})", _row(stored)
                )
                return stored
        finally:
            fetched.path.unlink(missing_ok=True)

    def versions(self, channel: str, merchant: str, day: date, bill_type: str) -> list[StoredBill]:
        """Every version of one bill, oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM bill_versions WHERE {_KEY} ORDER BY version",
                (channel, merchant, day.isoformat(), bill_type),
            ).fetchall()
        return [self._stored(row) for row in rows]

    def bills(self, channel: str, merchant: str, day: date) -> list[StoredBill]:
        """The latest version of each of a merchant's bills of ``day``."""
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM bill_versions AS v WHERE channel = ? AND merchant = ?"
                " AND day = ? AND version = (SELECT MAX(version) FROM bill_versions WHERE"
                " channel = v.channel AND merchant = v.merchant AND day = v.day AND"
                " bill_type = v.bill_type) ORDER BY bill_type",
                (channel, merchant, day.isoformat()),
            ).fetchall()
        return [self._stored(row) for row in rows]

    def _latest(self, db: sqlite3.Connection, origin: Provenance) -> StoredBill | None:
        key = (origin.channel, origin.merchant, origin.day.isoformat(), origin.bill_type)
        row = db.execute(
            f"SELECT {_COLUMNS} FROM bill_versions WHERE {_KEY} ORDER BY version DESC LIMIT 1",
            key,
        ).fetchone()
        return None if row is None else self._stored(row)

    def _keep(self, fetched: FetchedFile) -> None:
        target = self.path_of(fetched.sha256)
        if target.exists():  # the same content under another bill or an older version
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(fetched.path, 0o444)
        os.replace(fetched.path, target)

    def _stored(self, row: tuple[Any, ...]) -> StoredBill:
        """A version as read back; its status tells how it entered the store."""
        channel, merchant, day, bill_type, version, sha256, size, name, source, at, prev = row
        origin = Provenance(
            channel, merchant, date.fromisoformat(day), bill_type, source,
            datetime.fromisoformat(at),
        )  # fmt: skip
        status: Status = "new" if version == 1 else "changed"
        return StoredBill(self.path_of(sha256), sha256, size, version, name, origin, status, prev)

    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.index, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        db.executescript(_SCHEMA)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


_MARKS = ", ".join("?" * len(_COLUMNS.split(",")))


def _row(stored: StoredBill) -> tuple[object, ...]:
    origin = stored.provenance
    return (
        origin.channel,
        origin.merchant,
        origin.day.isoformat(),
        origin.bill_type,
        stored.version,
        stored.sha256,
        stored.size,
        stored.name,
        origin.source,
        origin.fetched_at.isoformat(),
        stored.previous_sha256,
    )
