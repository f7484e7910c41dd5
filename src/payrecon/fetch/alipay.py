"""Alipay bills: ``alipay.data.dataservice.bill.downloadurl.query``, then the zip.

Protocol (Alipay open platform, 签名与验签; FORMATS.md section 2.1):

1. POST to the gateway (``…/gateway.do``), form-encoded: ``app_id``, ``method``,
   ``format=JSON``, ``charset=utf-8``, ``sign_type=RSA2``, ``timestamp``
   (``yyyy-MM-dd HH:mm:ss``, Beijing time), ``version=1.0``, ``biz_content``
   (``{"bill_type": "trade", "bill_date": "yyyy-MM-dd"}``) and ``sign``: the base64
   SHA256withRSA signature, with the app's private key, of every other non-empty
   parameter sorted by name and joined as ``k=v&k=v`` (raw values, not URL-encoded).
2. The answer is ``{"alipay_data_dataservice_bill_downloadurl_query_response": {…},
   "sign": "…"}``. ``sign`` is Alipay's RSA2 signature of the response object's JSON
   text exactly as it appears in the body; it is verified with Alipay's public key
   (a success without a valid signature is refused). ``code`` 10000 carries
   ``bill_download_url``; ``sub_code`` ``isp.bill_not_exist`` means no bill (yet).
3. The URL is valid for 30 seconds and serves the zip (GBK CSVs), which is stored as is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from payrecon.errors import (
    BillIntegrityError,
    BillNotReadyError,
    ChannelAuthError,
    ChannelErrorResponse,
    ChannelUnavailableError,
    FetchError,
    Location,
)
from payrecon.fetch import keys
from payrecon.fetch.base import FetchedFile, Provenance, Spool, fetch_all, utc_now
from payrecon.fetch.transfer import download, send, snippet, status_error

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
RESPONSE_NODE = METHOD.replace(".", "_") + "_response"
ERROR_NODE = "error_response"
SUCCESS = "10000"
NOT_READY = frozenset({"isp.bill_not_exist", "isv.bill-not-exist", "BILL_NOT_EXIST"})
UNAVAILABLE_CODES = frozenset({"20000"})  # 服务不可用
BEIJING = ZoneInfo("Asia/Shanghai")
_ZIP_MAGIC = b"PK\x03\x04"


def signing_text(params: dict[str, str]) -> str:
    """The text Alipay signs: non-empty parameters but ``sign``, sorted, ``k=v&k=v``.

    >>> signing_text({"sign": "x", "b": "2", "a": "1", "c": ""})
    'a=1&b=2'
    """
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v and k != "sign")


def response_text(body: str, node: str) -> str | None:
    """The JSON text of ``node``'s value exactly as in ``body`` (what Alipay signed).

    >>> response_text('{"x_response":{"code":"10000", "a":"\\\\/"},"sign":"s"}', "x_response")
    '{"code":"10000", "a":"\\\\/"}'
    """
    marker = f'"{node}"'
    at = body.find(marker)
    if at < 0:
        return None
    start = body.index(":", at + len(marker)) + 1
    while body[start] in " \t\r\n":
        start += 1
    try:
        _, end = json.JSONDecoder().raw_decode(body, start)
    except ValueError:
        return None
    return body[start:end]


@dataclass(frozen=True)
class AlipayCredentials:
    app_id: str
    private_key: rsa.RSAPrivateKey
    alipay_public_key: rsa.RSAPublicKey


class AlipayFetcher:
    """Downloads one merchant's configured Alipay bills (``trade``, ``signcustomer``)."""

    def __init__(
        self,
        credentials: AlipayCredentials,
        client: httpx.Client,
        staging: Path,
        *,
        bill_types: tuple[str, ...] = ("trade",),
        gateway: str = "https://openapi.alipay.com/gateway.do",
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.credentials = credentials
        self.client = client
        self.staging = staging
        self.bill_types = bill_types
        self.gateway = httpx.URL(gateway)
        self.now = now

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        return fetch_all(
            partial(self._fetch_one, channel, merchant, day, t) for t in self.bill_types
        )

    def request_params(self, day: date, bill_type: str) -> dict[str, str]:
        """The signed form parameters of the query for one bill."""
        biz = {"bill_type": bill_type, "bill_date": day.isoformat()}
        params = {
            "app_id": self.credentials.app_id,
            "method": METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": self.now().astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz, separators=(",", ":")),
        }
        params["sign"] = keys.sign(self.credentials.private_key, signing_text(params).encode())
        return params

    def _fetch_one(self, channel: str, merchant: str, day: date, bill_type: str) -> FetchedFile:
        what = f"Alipay {bill_type} bill of {day} ({self.gateway.host})"
        url = self._download_url(day, bill_type, what)
        with Spool(self.staging) as spool:
            # The URL comes from a verified answer; Alipay's file host may redirect.
            request = self.client.build_request("GET", url)
            download(self.client, request, spool, what, follow_redirects=True)
            spooled = spool.finish()
        if not spooled.head.startswith(_ZIP_MAGIC):
            spooled.path.unlink(missing_ok=True)
            raise FetchError(f"{what}: the download is not a zip: {snippet(spooled.head)}")
        source = str(httpx.URL(url).copy_with(query=None))
        provenance = Provenance(channel, merchant, day, bill_type, source, self.now())
        name = f"alipay_{merchant}_{day.isoformat()}_{bill_type}.csv.zip"
        return spooled.fetched(name, provenance)

    def _download_url(self, day: date, bill_type: str, what: str) -> str:
        form = self.request_params(day, bill_type)
        headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
        request = self.client.build_request("POST", self.gateway, data=form, headers=headers)
        response = send(self.client, request, what)
        if response.status_code != 200:
            raise status_error(response.status_code, what, response.content)
        node = self._verified_node(response.text, what)
        if node.get("code") != SUCCESS:
            raise _failure(node, what)
        url = node.get("bill_download_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FetchError(f"{what}: the answer has no bill_download_url")
        return url

    def _verified_node(self, body: str, what: str) -> dict[str, Any]:
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise FetchError(f"{what}: the answer is not JSON: {snippet(body.encode())}") from exc
        name = RESPONSE_NODE if RESPONSE_NODE in answer else ERROR_NODE
        node = answer.get(name)
        if not isinstance(node, dict):
            raise FetchError(f"{what}: unexpected answer: {snippet(body.encode())}")
        signature = answer.get("sign")
        # Alipay leaves some gateway errors (e.g. a bad request signature) unsigned.
        if signature is None and node.get("code") != SUCCESS:
            return node
        raw = response_text(body, name)
        if not isinstance(signature, str) or raw is None:
            raise BillIntegrityError(f"{what}: the answer is not signed by Alipay")
        if not keys.verify(self.credentials.alipay_public_key, raw.encode(), signature):
            raise BillIntegrityError(
                f"{what}: the answer's signature does not verify with the configured Alipay"
                " public key (alipay_public_key)"
            )
        return node


def _failure(node: dict[str, Any], what: str) -> Exception:
    code, sub_code = str(node.get("code", "")), str(node.get("sub_code", ""))
    detail = f"Alipay answered {code} {node.get('msg', '')}"
    if sub_code:
        detail += f" ({sub_code}: {node.get('sub_msg', '')})"
    text = f"{what}: {detail}"
    if sub_code in NOT_READY:
        return BillNotReadyError(text)
    if "signature" in sub_code or sub_code.startswith("isv.invalid-app"):
        return ChannelAuthError(f"{text}; check app_id and the app's private key")
    if code in UNAVAILABLE_CODES or sub_code.startswith("isp.unknow"):
        return ChannelUnavailableError(text)
    return ChannelErrorResponse(detail, Location(what))
