"""The audit log's hash chain, as pure functions.

Entry *n* stores ``hash_n = SHA-256(hash_{n-1} || "\\n" || canonical(entry_n))``, with
``hash_0`` = 64 zeros, and the entries are numbered 1, 2, 3… without gaps. Changing any
stored field of an entry changes its hash; deleting an entry leaves a gap in the numbers
or a ``prev_hash`` that no longer matches. Deleting the *newest* entries cannot be seen
from the chain alone, which is why the head (last number and hash) can be exported and
checked later (``payrecon audit verify --expect-head``).

``canonical`` is sorted-key compact JSON of the entry's fields; times are ISO-8601 UTC
strings with microseconds, so the same entry hashes the same after any database round
trip.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "case_id", "event", "actor", "actor_kind", "at", "before", "after")


def iso(moment: datetime) -> str:
    """A moment as the chain writes it: UTC, microseconds, ``+00:00``."""
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes hashed for an entry: its hashed fields as sorted compact JSON."""
    picked = {name: entry.get(name) for name in HASHED_FIELDS}
    if isinstance(picked["at"], datetime):
        picked["at"] = iso(picked["at"])
    return json.dumps(picked, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(entry)).hexdigest()


@dataclass(frozen=True)
class Head:
    """The newest entry: its number and hash (``0`` and :data:`GENESIS` when empty)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        seq, _, digest = text.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ValueError(f"not an audit head (SEQ:SHA256): {text!r}")
        return cls(int(seq), digest.lower())


@dataclass(frozen=True)
class Verdict:
    """The result of checking a chain: ``broken_at`` names the first bad entry."""

    checked: int
    head: Head
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(entries: Iterable[Mapping[str, Any]], expect_head: Head | None = None) -> Verdict:
    """Walk the entries in ``seq`` order; stop at the first one that breaks the chain.

    Each entry carries its hashed fields plus ``prev_hash`` and ``hash`` as stored.
    """
    previous = Head(0, GENESIS)
    checked = 0
    for entry in entries:
        seq = entry["seq"]
        if seq != previous.seq + 1:
            missing = f"entries {previous.seq + 1}..{seq - 1} are missing"
            return Verdict(checked, previous, previous.seq + 1, missing)
        if entry["prev_hash"] != previous.hash:
            return Verdict(checked, previous, seq, "prev_hash does not match the entry before")
        if chain_hash(previous.hash, entry) != entry["hash"]:
            return Verdict(checked, previous, seq, "the entry was changed after it was written")
        previous = Head(seq, entry["hash"])
        checked += 1
        if expect_head is not None and seq == expect_head.seq and previous != expect_head:
            reason = f"entry {seq} is not the expected head {expect_head}"
            return Verdict(checked, previous, seq, reason)
    if expect_head is not None and expect_head.seq > previous.seq:
        reason = f"entries after {previous.seq} are missing (expected head {expect_head})"
        return Verdict(checked, previous, previous.seq + 1, reason)
    return Verdict(checked, previous)
