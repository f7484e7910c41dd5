"""The SQLite checkpoint store: round trip, replacement, the lock, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from payrecon.errors import ConfigError
from payrecon.stream.checkpoint import Checkpoint, CheckpointStore


def checkpoint(offset: int, finished: bool = False) -> Checkpoint:
    return Checkpoint(
        sources={"pay": "file:/p", "receipt": "kafka:r?group=g"},
        matcher={"version": 1, "keys": [], "watermarks": {}, "late_events": 0},
        positions={"pay": {"offset": offset, "line": 2}, "receipt": {"0": 5, "3": 1}},
        ended=("pay",),
        stats={"events": {"pay": 2}, "ignored": 0},
        finished=finished,
    )


def test_a_new_store_has_no_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.sqlite")
    assert store.load() is None
    store.close()


def test_save_replaces_the_checkpoint_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    store = CheckpointStore(path)
    assert store.save(checkpoint(10)) == 1
    assert store.save(checkpoint(20, finished=True)) == 2
    store.close()
    again = CheckpointStore(path)
    loaded = again.load()
    again.close()
    assert loaded == checkpoint(20, finished=True)
    assert loaded is not None and loaded.sequence == 2
    rows = sqlite3.connect(path).execute("SELECT count(*) FROM checkpoint").fetchone()
    assert rows == (1,)


def test_one_job_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    first = CheckpointStore(path)
    with pytest.raises(ConfigError, match="in use by another running job"):
        CheckpointStore(path)
    first.close()
    CheckpointStore(path).close()  # free again


def test_a_file_that_is_not_sqlite_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    path.write_text("not a database, just text that is long enough" * 50, encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot use checkpoint"):
        CheckpointStore(path)
    CheckpointStore(tmp_path / "other.sqlite").close()


def test_a_folder_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot use checkpoint"):
        CheckpointStore(tmp_path / "missing" / "cp.sqlite")


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    store = CheckpointStore(path)
    store.save(checkpoint(1))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE checkpoint SET format = 99")
    db.close()
    store = CheckpointStore(path)
    with pytest.raises(ConfigError, match="unknown format 99"):
        store.load()
    store.close()
