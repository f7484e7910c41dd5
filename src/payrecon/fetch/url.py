"""A bill at an HTTP(S) URL, on hosts named in an allow-list.

The URL template is filled in (``https://h/{merchant}/{date:%Y%m%d}.csv``); the URL and
every redirect hop must point at an allowed host, checked before anything is sent there,
so a compromised or misconfigured server cannot send the fetcher (and its headers)
elsewhere. 404 and 410 mean "not published yet" and are retried.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import NoReturn

import httpx

from payrecon.errors import FetchError, HostNotAllowedError
from payrecon.fetch.base import FetchedFile, Provenance, Spool, expand, utc_now
from payrecon.fetch.transfer import download, status_error

MAX_REDIRECTS = 5


def check_host(url: httpx.URL, allowed_hosts: tuple[str, ...]) -> None:
    """Refuse ``url`` unless it is http(s) on an allowed ``host`` or ``host:port``."""
    if url.scheme not in ("http", "https"):
        raise HostNotAllowedError(f"{url}: only http and https URLs are fetched")
    host = url.host.lower()
    names = {host, f"{host}:{url.port}"} if url.port else {host}
    if not names & {entry.lower() for entry in allowed_hosts}:
        raise HostNotAllowedError(
            f"{url}: host {host} is not in allowed_hosts ({', '.join(allowed_hosts)});"
            " refusing to fetch from it"
        )


class UrlFetcher:
    """Downloads one file per day from a URL template."""

    def __init__(
        self,
        url: str,
        allowed_hosts: tuple[str, ...],
        client: httpx.Client,
        staging: Path,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.allowed_hosts = allowed_hosts
        self.client = client
        self.staging = staging
        self.headers = dict(headers or {})

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        url = httpx.URL(expand(self.url, channel=channel, merchant=merchant, day=day))
        with Spool(self.staging) as spool:
            final = self._download(url, spool)
            spooled = spool.finish()
        name = posixpath.basename(final.path) or "bill"
        source = str(final.copy_with(query=None))
        provenance = Provenance(channel, merchant, day, name, source, utc_now())
        return [spooled.fetched(name, provenance)]

    def _download(self, url: httpx.URL, spool: Spool) -> httpx.URL:
        """Download into ``spool``, checking each redirect hop before asking it; the URL."""
        for _ in range(MAX_REDIRECTS + 1):
            check_host(url, self.allowed_hosts)
            request = self.client.build_request("GET", url, headers=self.headers)
            try:
                download(self.client, request, spool, str(url), _redirect_or_fail)
            except _Redirect as hop:
                url = url.join(hop.location)
                continue
            return url
        raise FetchError(f"{self.url}: more than {MAX_REDIRECTS} redirects")


class _Redirect(Exception):
    """A redirect answer (control flow inside this module only)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _redirect_or_fail(response: httpx.Response, body: bytes) -> NoReturn:
    if response.is_redirect and response.headers.get("Location"):
        raise _Redirect(response.headers["Location"])
    raise status_error(response.status_code, str(response.request.url), body)
