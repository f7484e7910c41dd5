"""WeChat Pay API v2 bills: ``POST /pay/downloadbill`` with a signed XML body.

Protocol (WeChat Pay v2 "安全规范" and the downloadbill page, FORMATS.md section 1.1):
the request is ``<xml>`` with appid, mch_id, nonce_str, bill_date (``yyyyMMdd``),
bill_type, optional tar_type ``GZIP`` and sign_type, and ``sign``. The sign is computed
over the non-empty parameters except ``sign``, sorted by name and joined as
``k=v&k=v…&key=<API key>``: its MD5, or its HMAC-SHA256 keyed with the API key, in upper
case hex. A success answer *is* the bill (gzip with ``tar_type=GZIP``, not signed); a
failure is XML with ``return_code`` FAIL, e.g. ``No Bill Exist`` (error_code 20002, not
published yet) or ``invalid bill_date`` (20001).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Literal, NoReturn
from xml.sax.saxutils import escape

import httpx

from payrecon.fetch.base import FetchedFile, Provenance, Spool, fetch_all, utc_now
from payrecon.fetch.transfer import download
from payrecon.fetch.wechat import is_error_body, raise_failure

SignType = Literal["MD5", "HMAC-SHA256"]


def v2_sign(params: Mapping[str, str], api_key: str, sign_type: SignType = "MD5") -> str:
    """WeChat Pay v2 ``sign`` of ``params`` (``sign`` itself and empty values left out).

    WeChat Pay's own example (安全规范), both sign types:

    >>> example = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100",
    ...            "device_info": "1000", "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}
    >>> v2_sign(example, "192006250b4c09247ec02edce69f6a2d")
    '9A0A8659F005D6984697E2CA0A9CF3B7'
    >>> v2_sign(example, "192006250b4c09247ec02edce69f6a2d", "HMAC-SHA256")[:16]
    '6A9AE1657590FD62'
    """
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v and k != "sign")
    text += f"&key={api_key}"
    if sign_type == "HMAC-SHA256":
        digest = hmac.new(api_key.encode(), text.encode(), hashlib.sha256).hexdigest()
    else:
        digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return digest.upper()


@dataclass(frozen=True)
class WechatV2Credentials:
    appid: str
    mch_id: str
    api_key: str
    sign_type: SignType = "MD5"


class WechatV2Fetcher:
    """Downloads the configured trade bills of one merchant through API v2."""

    def __init__(
        self,
        credentials: WechatV2Credentials,
        client: httpx.Client,
        staging: Path,
        *,
        bill_types: tuple[str, ...] = ("ALL",),
        gzip: bool = True,
        base_url: str = "https://api.mch.weixin.qq.com",
        now: Callable[[], datetime] = utc_now,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.credentials = credentials
        self.client = client
        self.staging = staging
        self.url = httpx.URL(base_url.rstrip("/") + "/pay/downloadbill")
        self.bill_types = bill_types
        self.gzip = gzip
        self.now = now
        self.nonce = nonce

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        return fetch_all(
            partial(self._fetch_one, channel, merchant, day, t) for t in self.bill_types
        )

    def request_params(self, day: date, bill_type: str) -> dict[str, str]:
        """The signed request parameters for one bill."""
        creds = self.credentials
        params = {
            "appid": creds.appid,
            "mch_id": creds.mch_id,
            "nonce_str": self.nonce(),
            "bill_date": day.strftime("%Y%m%d"),
            "bill_type": bill_type,
        }
        if self.gzip:
            params["tar_type"] = "GZIP"
        if creds.sign_type != "MD5":  # MD5 is the default; others must be named
            params["sign_type"] = creds.sign_type
        params["sign"] = v2_sign(params, creds.api_key, creds.sign_type)
        return params

    def _fetch_one(self, channel: str, merchant: str, day: date, bill_type: str) -> FetchedFile:
        xml = _xml(self.request_params(day, bill_type))
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        request = self.client.build_request("POST", self.url, content=xml, headers=headers)
        what = f"{self.url} ({bill_type} bill of {day})"
        with Spool(self.staging, gunzip=True) as spool:
            download(self.client, request, spool, what, partial(_failure, what))
            spooled = spool.finish()
        if is_error_body(spooled.head):
            spooled.path.unlink(missing_ok=True)
            raise_failure(spooled.head, what)
        provenance = Provenance(channel, merchant, day, bill_type, str(self.url), self.now())
        return spooled.fetched(f"wechat_{merchant}_{day.isoformat()}_{bill_type}.csv", provenance)


def _xml(params: Mapping[str, str]) -> bytes:
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in params.items())
    return f"<xml>{body}</xml>".encode()


def _failure(what: str, response: httpx.Response, body: bytes) -> NoReturn:
    raise_failure(body, what, response.status_code)
