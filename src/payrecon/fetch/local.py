"""Bills dropped into a local (or mounted) folder, as banks do.

``pattern`` is a glob relative to ``folder`` with placeholders
(``{merchant}/ZM_{date:%Y%m%d}*.txt``). Each matching file is copied into the store; no
match means the bill has not been dropped yet (retried).
"""

from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path

from payrecon.errors import BillNotReadyError, ConfigError, FetchError
from payrecon.fetch.base import (
    CHUNK,
    FetchedFile,
    Provenance,
    Spool,
    expand,
    fetch_all,
    utc_now,
)


class LocalFetcher:
    """Copies the files of the day matching a glob out of a folder."""

    def __init__(self, folder: Path, pattern: str, staging: Path) -> None:
        self.folder = folder.expanduser()
        self.pattern = pattern
        self.staging = staging

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        pattern = expand(self.pattern, channel=channel, merchant=merchant, day=day)
        return fetch_all(
            partial(self._copy, path, channel, merchant, day) for path in self._matches(pattern)
        )

    def _matches(self, pattern: str) -> list[Path]:
        if not self.folder.is_dir():
            raise ConfigError(f"fetch folder {self.folder} does not exist")
        try:
            found = sorted(path for path in self.folder.glob(pattern) if path.is_file())
        except (ValueError, NotImplementedError) as exc:  # absolute or empty patterns
            raise ConfigError(f"pattern {pattern!r}: {exc}") from exc
        if not found:
            raise BillNotReadyError(f"no file matches {self.folder / pattern} (not dropped yet?)")
        return found

    def _copy(self, path: Path, channel: str, merchant: str, day: date) -> FetchedFile:
        with Spool(self.staging) as spool:
            try:
                with path.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        spool.write(chunk)
            except OSError as exc:
                raise FetchError(f"{path}: cannot read: {exc.strerror}") from exc
            spooled = spool.finish()
        provenance = Provenance(channel, merchant, day, path.name, str(path), utc_now())
        return spooled.fetched(path.name, provenance)
