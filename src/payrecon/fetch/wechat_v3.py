"""WeChat Pay API v3 bills: ``GET /v3/bill/tradebill`` and ``/v3/bill/fundflowbill``.

Protocol (FORMATS.md section 1.1; WeChat Pay's "签名生成" and "签名验证" pages):

1. Every request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",
   nonce_str="…",signature="…",timestamp="…",serial_no="…"``, where ``signature`` is the
   base64 SHA256withRSA signature, with the merchant's private key, of
   ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n`` (the body is empty for GET).
2. The bill endpoint answers ``{"hash_type": "SHA1", "hash_value": …, "download_url": …}``.
   With a WeChat Pay public key configured, that answer's signature (headers
   ``Wechatpay-Timestamp``, ``-Nonce``, ``-Signature`` over ``timestamp\\nnonce\\nbody\\n``)
   is verified, so the hash cannot be forged either.
3. ``download_url`` is fetched with its own signed Authorization; it must be on the API's
   host. The file is gzip (``tar_type=GZIP``); it is decompressed while it streams and
   its SHA-1 is compared with ``hash_value``. The download answer carries no signature.

A bill not generated yet is a 400 with ``NO_STATEMENT_EXIST`` or ``STATEMENT_CREATING``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from payrecon.errors import BillIntegrityError, FetchError, HostNotAllowedError
from payrecon.fetch import keys
from payrecon.fetch.base import FetchedFile, Provenance, Spool, fetch_all, utc_now
from payrecon.fetch.transfer import download, send
from payrecon.fetch.wechat import raise_failure

SCHEME = "WECHATPAY2-SHA256-RSA2048"
ANSWER_MAX_AGE_S = 300  # WeChat's answers older (or newer) than this are refused


@dataclass(frozen=True)
class WechatV3Credentials:
    mchid: str
    serial_no: str
    private_key: rsa.RSAPrivateKey
    platform_key: rsa.RSAPublicKey | None = None  # verifies answers when given


@dataclass(frozen=True)
class _Bill:
    endpoint: str  # tradebill or fundflowbill
    parameter: str  # bill_type or account_type
    value: str

    @property
    def bill_type(self) -> str:
        return self.value if self.endpoint == "tradebill" else f"fundflow-{self.value}"


class WechatV3Fetcher:
    """Downloads the configured trade and fund-flow bills of one merchant."""

    def __init__(
        self,
        credentials: WechatV3Credentials,
        client: httpx.Client,
        staging: Path,
        *,
        bill_types: tuple[str, ...] = ("ALL",),
        fundflow_accounts: tuple[str, ...] = (),
        base_url: str = "https://api.mch.weixin.qq.com",
        now: Callable[[], datetime] = utc_now,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16).upper(),
    ) -> None:
        self.credentials = credentials
        self.client = client
        self.staging = staging
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.bills = [_Bill("tradebill", "bill_type", t) for t in bill_types]
        self.bills += [_Bill("fundflowbill", "account_type", a) for a in fundflow_accounts]
        self.now = now
        self.nonce = nonce

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        return fetch_all(partial(self._fetch_one, channel, merchant, day, b) for b in self.bills)

    def _fetch_one(self, channel: str, merchant: str, day: date, bill: _Bill) -> FetchedFile:
        query = {"bill_date": day.isoformat(), bill.parameter: bill.value, "tar_type": "GZIP"}
        url = self.base_url.join(f"v3/bill/{bill.endpoint}?{urlencode(query)}")
        answer = self._bill_answer(url)
        download_url = self._download_url(answer)
        with Spool(self.staging, gunzip=True) as spool:
            request = self._signed("GET", download_url)
            download(self.client, request, spool, str(download_url), self._failure)
            spooled = spool.finish()
        _check_hash(spooled.sha1, answer, str(download_url), spooled.path)
        source = str(download_url.copy_with(query=None))
        provenance = Provenance(channel, merchant, day, bill.bill_type, source, self.now())
        name = f"wechat_{merchant}_{day.isoformat()}_{bill.bill_type}.csv"
        return spooled.fetched(name, provenance)

    def _bill_answer(self, url: httpx.URL) -> dict[str, Any]:
        response = send(self.client, self._signed("GET", url), str(url))
        if response.status_code != 200:
            raise_failure(response.content, str(url), response.status_code)
        if self.credentials.platform_key is not None:
            self._verify_answer(response)
        try:
            answer = json.loads(response.content)
        except ValueError as exc:
            raise FetchError(f"{url}: the answer is not JSON: {response.text[:200]!r}") from exc
        if not isinstance(answer, dict) or not answer.get("download_url"):
            raise FetchError(f"{url}: the answer has no download_url: {response.text[:200]!r}")
        return answer

    def _download_url(self, answer: dict[str, Any]) -> httpx.URL:
        url = httpx.URL(str(answer["download_url"]))
        if (url.scheme, url.host, url.port) != (
            self.base_url.scheme,
            self.base_url.host,
            self.base_url.port,
        ):
            raise HostNotAllowedError(
                f"download_url {url} is not on the API host {self.base_url.host};"
                " refusing to send a signed request there"
            )
        return url

    def _signed(self, method: str, url: httpx.URL, body: str = "") -> httpx.Request:
        headers = {"Authorization": self.authorization(method, url, body)}
        headers["Accept"] = "application/json"
        return self.client.build_request(method, url, headers=headers, content=body or None)

    def authorization(self, method: str, url: httpx.URL, body: str = "") -> str:
        """The ``Authorization`` header value for a request (see the module docstring)."""
        timestamp = str(int(self.now().timestamp()))
        nonce = self.nonce()
        # raw_path is the path and query exactly as they go on the wire.
        target = url.raw_path.decode("ascii")
        message = f"{method}\n{target}\n{timestamp}\n{nonce}\n{body}\n".encode()
        signature = keys.sign(self.credentials.private_key, message)
        fields = {
            "mchid": self.credentials.mchid,
            "nonce_str": nonce,
            "signature": signature,
            "timestamp": timestamp,
            "serial_no": self.credentials.serial_no,
        }
        return SCHEME + " " + ",".join(f'{k}="{v}"' for k, v in fields.items())

    def _verify_answer(self, response: httpx.Response) -> None:
        key = self.credentials.platform_key
        assert key is not None
        what = str(response.request.url)
        headers = response.headers
        timestamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        signature = headers.get("Wechatpay-Signature", "")
        if not (timestamp and nonce and signature):
            raise BillIntegrityError(f"{what}: the answer is not signed by WeChat Pay")
        if not self._fresh(timestamp):
            raise BillIntegrityError(f"{what}: the answer's Wechatpay-Timestamp is stale")
        message = f"{timestamp}\n{nonce}\n".encode() + response.content + b"\n"
        if not keys.verify(key, message, signature):
            raise BillIntegrityError(
                f"{what}: the answer's signature does not verify with the WeChat Pay public key"
                f" (Wechatpay-Serial {headers.get('Wechatpay-Serial', '?')})"
            )

    def _fresh(self, timestamp: str) -> bool:
        """Within five minutes of our clock (an old answer may be replayed)."""
        if not timestamp.isdigit():
            return False
        return abs(self.now().timestamp() - int(timestamp)) <= ANSWER_MAX_AGE_S

    @staticmethod
    def _failure(response: httpx.Response, body: bytes) -> NoReturn:
        raise_failure(body, str(response.request.url), response.status_code)


def _check_hash(sha1: str, answer: dict[str, Any], what: str, path: Path) -> None:
    hash_type = str(answer.get("hash_type", "")).upper()
    expected = str(answer.get("hash_value", "")).lower()
    if hash_type != "SHA1" or not expected:
        path.unlink(missing_ok=True)
        raise BillIntegrityError(f"{what}: cannot check the bill: hash_type {hash_type!r}")
    if not hmac.compare_digest(sha1, expected):
        path.unlink(missing_ok=True)
        raise BillIntegrityError(
            f"{what}: the bill's SHA1 {sha1} is not the hash_value {expected} WeChat Pay"
            " announced (a damaged or altered download)"
        )
