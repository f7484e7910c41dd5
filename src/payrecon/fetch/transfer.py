"""HTTP for the fetchers (httpx): one client setup, downloads into a spool, errors mapped.

Redirects are never followed silently: the URL fetcher checks each hop against its
allow-list, and the channel APIs do not redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import httpx

from payrecon import __version__
from payrecon.errors import (
    BillNotReadyError,
    ChannelAuthError,
    ChannelUnavailableError,
    FetchError,
)
from payrecon.fetch.base import CHUNK, HEAD_BYTES, Spool

USER_AGENT = f"payrecon/{__version__}"
RETRY_STATUSES = frozenset({408, 425, 429})

FailureHandler = Callable[[httpx.Response, bytes], NoReturn]


def new_client(timeout_s: float) -> httpx.Client:
    return httpx.Client(
        timeout=timeout_s, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    )


@contextmanager
def reaching(what: str) -> Iterator[None]:
    """Turn httpx's transport errors (connect, read, timeout) into ChannelUnavailableError."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ChannelUnavailableError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise ChannelUnavailableError(f"{what}: cannot reach the server: {exc}") from exc


def status_error(status: int, what: str, body: bytes = b"") -> FetchError:
    """The error for an HTTP status that is not a success."""
    detail = snippet(body)
    text = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return ChannelAuthError(f"{text} (the server refused the credentials)")
    if status in (404, 410):
        return BillNotReadyError(f"{text} (not published yet?)")
    if status in RETRY_STATUSES or status >= 500:
        return ChannelUnavailableError(text)
    return FetchError(text)


def raise_status(response: httpx.Response, body: bytes) -> NoReturn:
    raise status_error(response.status_code, str(response.request.url), body)


def send(client: httpx.Client, request: httpx.Request, what: str) -> httpx.Response:
    """Send a request whose answer is small (JSON or XML); the body is read."""
    with reaching(what):
        return client.send(request)


def download(
    client: httpx.Client,
    request: httpx.Request,
    spool: Spool,
    what: str,
    on_failure: FailureHandler = raise_status,
    *,
    follow_redirects: bool = False,
) -> httpx.Response:
    """Stream a 200 answer's body into ``spool``; any other answer goes to ``on_failure``."""
    with reaching(what):
        response = client.send(request, stream=True, follow_redirects=follow_redirects)
        try:
            if response.status_code != 200:
                on_failure(response, _head(response))
            for chunk in response.iter_bytes(CHUNK):
                spool.write(chunk)
        finally:
            response.close()
    return response


def snippet(body: bytes, limit: int = 300) -> str:
    """The start of a body as one line of text, for messages."""
    return " ".join(body[:limit].decode("utf-8", "replace").split())


def _head(response: httpx.Response) -> bytes:
    head = b""
    for chunk in response.iter_bytes(CHUNK):
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    return head[:HEAD_BYTES]
