"""Bills on an SFTP server (PayPal, banks), fetched with asyncssh.

``path`` is a remote path or glob with placeholders (``/out/STL-{date:%Y%m%d}.*.CSV``).
No matching file means the bill is not there yet (retried). The server's host key is
checked against a known_hosts file (``~/.ssh/known_hosts`` unless one is configured);
turning the check off must be said explicitly (``check_host_key = false``).
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncssh

from payrecon.errors import (
    BillNotReadyError,
    ChannelAuthError,
    ChannelUnavailableError,
    ConfigError,
)
from payrecon.fetch.base import (
    CHUNK,
    FetchedFile,
    Provenance,
    Spool,
    Spooled,
    expand,
    utc_now,
)

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class SftpServer:
    """Where and how to log in."""

    host: str
    username: str
    port: int = 22
    client_key: bytes | None = None  # private key (OpenSSH or PEM) for key auth
    password: str | None = None
    known_hosts: Path | None = None  # None: ~/.ssh/known_hosts
    check_host_key: bool = True
    timeout_s: float = 60.0

    @property
    def url(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}"


class SftpFetcher:
    """Downloads the files matching a path template from one SFTP server."""

    def __init__(self, server: SftpServer, path: str, staging: Path) -> None:
        self.server = server
        self.path = path
        self.staging = staging

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        remote = expand(self.path, channel=channel, merchant=merchant, day=day)
        done: list[FetchedFile] = []
        try:
            asyncio.run(self._fetch(remote, done, channel, merchant, day))
        except BaseException:
            for fetched in done:
                fetched.path.unlink(missing_ok=True)
            raise
        return done

    async def _fetch(
        self, remote: str, done: list[FetchedFile], channel: str, merchant: str, day: date
    ) -> None:
        what = f"{self.server.url}{remote}"
        try:
            async with (
                asyncssh.connect(**self._connect_options()) as connection,
                connection.start_sftp_client() as sftp,
            ):
                for path in await _matches(sftp, remote, what):
                    spooled = await self._download(sftp, path)
                    source = f"{self.server.url}{path}"
                    name = posixpath.basename(path)
                    provenance = Provenance(channel, merchant, day, name, source, utc_now())
                    done.append(spooled.fetched(name, provenance))
        except asyncssh.HostKeyNotVerifiable as exc:
            raise ChannelAuthError(
                f"{what}: the server's host key is not in known_hosts"
                f" ({self.server.known_hosts or '~/.ssh/known_hosts'}): {exc.reason}"
            ) from exc
        except (asyncssh.PermissionDenied, asyncssh.SFTPPermissionDenied) as exc:
            raise ChannelAuthError(f"{what}: permission denied: {exc.reason}") from exc
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise ChannelUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc

    def _connect_options(self) -> dict[str, Any]:
        server = self.server
        options: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            "username": server.username,
            "connect_timeout": server.timeout_s,
            "password": server.password,
        }
        if server.client_key is not None:
            try:
                options["client_keys"] = [asyncssh.import_private_key(server.client_key)]
            except asyncssh.KeyImportError as exc:
                raise ConfigError(f"{server.url}: the client key cannot be read: {exc}") from exc
        if not server.check_host_key:
            options["known_hosts"] = None
        elif server.known_hosts is not None:
            options["known_hosts"] = str(server.known_hosts.expanduser())
        return options

    async def _download(self, sftp: asyncssh.SFTPClient, path: str) -> Spooled:
        with Spool(self.staging) as spool:
            async with sftp.open(path, "rb", encoding=None) as remote_file:
                while chunk := await remote_file.read(CHUNK):
                    spool.write(_bytes(chunk))
            return spool.finish()


async def _matches(sftp: asyncssh.SFTPClient, remote: str, what: str) -> list[str]:
    """The remote files for ``remote`` (a path or a glob); none is "not ready"."""
    try:
        if _GLOB & set(remote):
            found = sorted(_text(p) for p in await sftp.glob(remote))
        else:
            found = [remote] if await sftp.isfile(remote) else []
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        found = []
    if not found:
        raise BillNotReadyError(f"{what}: no such file on the server (not published yet?)")
    return found


def _text(path: bytes | str) -> str:
    return path.decode() if isinstance(path, bytes) else path


def _bytes(data: bytes | str) -> bytes:
    # asyncssh types read() as AnyStr; a file opened "rb" without encoding gives bytes.
    return data if isinstance(data, bytes) else data.encode()
