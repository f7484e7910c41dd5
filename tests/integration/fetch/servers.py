"""Servers on 127.0.0.1 that speak the channels' real download protocols.

Each checks requests the way the channel does, implemented here independently of
``payrecon.fetch`` (its own signature checks with ``cryptography``, its own XML and form
parsing), so a mistake on either side of a protocol shows up as a failing test:

* :class:`WechatV3Api`: ``GET /v3/bill/tradebill`` and ``/v3/bill/fundflowbill`` with the
  ``WECHATPAY2-SHA256-RSA2048`` Authorization verified against the merchant's public key
  (401 ``SIGN_ERROR`` otherwise), answers signed with the platform key, the gzip bill at
  a signed ``download_url`` and its SHA1 as ``hash_value``;
* :class:`WechatV2Api`: ``POST /pay/downloadbill`` with the MD5 or HMAC-SHA256 ``sign``
  checked, FAIL XML (``签名错误``, ``invalid bill_date``, ``No Bill Exist``) otherwise;
* :class:`AlipayGateway`: ``alipay.data.dataservice.bill.downloadurl.query`` with the
  RSA2 request signature checked and the answer signed, then the zip;
* :class:`FileServer`: plain files, 404s and redirects, for the HTTP(S) fetcher;
* :class:`SftpServer`: asyncssh's SFTP server with key authentication.

A bill is "published" when ``published(day)`` says so; tests pass a fake clock's view.
Every request is recorded; an exception inside a server is recorded in ``errors`` and
answered with 500, and the fixtures assert that none happened.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import asyncssh
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Published = Callable[[date], bool]
WAIT_S = 10.0  # only a guard against a hung test, never a measured duration


def always(day: date) -> bool:
    return True


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verifies(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Request:
    method: str
    path: str  # path and query exactly as received
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: object, headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps(value, ensure_ascii=False).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})


class HttpApp:
    """An HTTP server on 127.0.0.1 answering with :meth:`answer`, served from a thread."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app._serve(self, "GET")

            def do_POST(self) -> None:
                app._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT_S)

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(method, handler.path, dict(handler.headers.items()), body)
        self.requests.append(request)
        try:
            reply = self.answer(request)
        except Exception as exc:
            self.errors.append(exc)
            reply = Reply(500, b"server error")
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)


def _query(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


class WechatV3Api(HttpApp):
    """WeChat Pay API v3 bill endpoints (see the module docstring)."""

    MAX_SKEW_S = 300

    def __init__(
        self,
        *,
        mchid: str,
        serial_no: str,
        merchant_key: rsa.RSAPublicKey,
        platform_key: rsa.RSAPrivateKey,
        bills: dict[tuple[date, str], bytes],
        published: Published = always,
    ) -> None:
        super().__init__()
        self.mchid = mchid
        self.serial_no = serial_no
        self.merchant_key = merchant_key
        self.platform_key = platform_key
        self.bills = bills  # (day, "ALL" or "fundflow-BASIC") -> uncompressed bill
        self.published = published
        self.tamper = False  # serve other bytes than the announced hash describes
        self.download_host: str | None = None  # announce download_url on another host
        self._tokens: dict[str, bytes] = {}
        self.authorized: list[str] = []  # paths whose Authorization verified

    def answer(self, request: Request) -> Reply:
        problem = self._authorization_problem(request)
        if problem:
            return Reply.json(401, {"code": "SIGN_ERROR", "message": problem})
        self.authorized.append(request.path)
        path = urlsplit(request.path).path
        if path in ("/v3/bill/tradebill", "/v3/bill/fundflowbill"):
            return self._bill(path, _query(request.path))
        if path == "/v3/billdownload/file":
            return self._file(_query(request.path).get("token", ""))
        return Reply.json(404, {"code": "NOT_FOUND", "message": "no such API"})

    def _authorization_problem(self, request: Request) -> str | None:
        scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
        if scheme != "WECHATPAY2-SHA256-RSA2048":
            return "Authorization scheme is not WECHATPAY2-SHA256-RSA2048"
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if fields.get("mchid") != self.mchid or fields.get("serial_no") != self.serial_no:
            return "mchid or serial_no does not match"
        timestamp = fields.get("timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.MAX_SKEW_S:
            return "timestamp missing or outside 5 minutes"
        body = request.body.decode()
        message = f"{request.method}\n{request.path}\n{timestamp}\n{fields.get('nonce_str')}\n"
        message += f"{body}\n"
        if not rsa_verifies(self.merchant_key, message.encode(), fields.get("signature", "")):
            return "签名错误: signature does not verify"
        return None

    def _bill(self, path: str, query: dict[str, str]) -> Reply:
        try:
            day = date.fromisoformat(query["bill_date"])
        except (KeyError, ValueError):
            return Reply.json(400, {"code": "INVALID_REQUEST", "message": "bill_date invalid"})
        kind = query.get("bill_type", "ALL")
        if path.endswith("fundflowbill"):
            kind = f"fundflow-{query.get('account_type', 'BASIC')}"
        content = self.bills.get((day, kind))
        if not self.published(day):
            return Reply.json(400, {"code": "STATEMENT_CREATING", "message": "账单生成中"})
        if content is None:
            return Reply.json(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})
        token = secrets.token_urlsafe(12)
        self._tokens[token] = content
        host = self.download_host or f"127.0.0.1:{self.port}"
        answer = {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(content).hexdigest(),
            "download_url": f"http://{host}/v3/billdownload/file?token={token}&tartype=gzip",
        }
        return self._signed(answer)

    def _signed(self, answer: dict[str, str]) -> Reply:
        body = json.dumps(answer)
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = rsa_sign(self.platform_key, f"{timestamp}\n{nonce}\n{body}\n".encode())
        headers = {
            "Content-Type": "application/json",
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": "PLATFORM-SERIAL-1",
        }
        return Reply(200, body.encode(), headers)

    def _file(self, token: str) -> Reply:
        content = self._tokens.pop(token, None)
        if content is None:
            return Reply.json(400, {"code": "INVALID_REQUEST", "message": "token expired"})
        if self.tamper:
            content = content.replace(b"1", b"7", 1)
        return Reply(200, gzip.compress(content), {"Content-Type": "application/octet-stream"})


def v2_fail(message: str, code: str | None = None) -> Reply:
    error = f"<error_code><![CDATA[{code}]]></error_code>" if code else ""
    body = (
        "<xml><return_code><![CDATA[FAIL]]></return_code>"
        f"<return_msg><![CDATA[{message}]]></return_msg>{error}</xml>"
    )
    return Reply(200, body.encode(), {"Content-Type": "text/plain"})


class WechatV2Api(HttpApp):
    """WeChat Pay API v2 ``/pay/downloadbill`` (see the module docstring)."""

    def __init__(
        self,
        *,
        appid: str,
        mch_id: str,
        api_key: str,
        bills: dict[tuple[date, str], bytes],
        published: Published = always,
    ) -> None:
        super().__init__()
        self.appid, self.mch_id, self.api_key = appid, mch_id, api_key
        self.bills = bills
        self.published = published
        self.oldest = date.min  # older bill_dates are refused as invalid
        self.sign_types: list[str] = []

    def answer(self, request: Request) -> Reply:
        if request.method != "POST" or urlsplit(request.path).path != "/pay/downloadbill":
            return Reply(404, b"not found")
        fields = {child.tag: (child.text or "") for child in ET.fromstring(request.body)}
        sign_type = fields.get("sign_type", "MD5")
        self.sign_types.append(sign_type)
        if fields.get("sign") != self._sign(fields, sign_type):
            return v2_fail("签名错误")
        if fields.get("appid") != self.appid or fields.get("mch_id") != self.mch_id:
            return v2_fail("appid and mch_id do not match")
        try:
            day = datetime.strptime(fields.get("bill_date", ""), "%Y%m%d").date()
        except ValueError:
            return v2_fail("invalid bill_date", "20001")
        if day < self.oldest:
            return v2_fail("invalid bill_date", "20001")
        if not self.published(day) or (day, fields.get("bill_type", "ALL")) not in self.bills:
            return v2_fail("No Bill Exist", "20002")
        content = self.bills[(day, fields.get("bill_type", "ALL"))]
        if fields.get("tar_type") == "GZIP":
            return Reply(200, gzip.compress(content), {"Content-Type": "application/x-gzip"})
        return Reply(200, content, {"Content-Type": "text/plain;charset=utf-8"})

    def _sign(self, fields: dict[str, str], sign_type: str) -> str:
        pairs = sorted((k, v) for k, v in fields.items() if k != "sign" and v != "")
        text = "&".join(f"{k}={v}" for k, v in pairs) + "&key=" + self.api_key
        if sign_type == "HMAC-SHA256":
            mac = hmac.new(self.api_key.encode(), text.encode(), hashlib.sha256)
            return mac.hexdigest().upper()
        return hashlib.md5(text.encode()).hexdigest().upper()


ALIPAY_NODE = "alipay_data_dataservice_bill_downloadurl_query_response"


class AlipayGateway(HttpApp):
    """Alipay's open-platform gateway for the bill download URL query (module docstring)."""

    def __init__(
        self,
        *,
        app_id: str,
        app_key: rsa.RSAPublicKey,
        alipay_key: rsa.RSAPrivateKey,
        bills: dict[tuple[date, str], bytes],
        published: Published = always,
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_key = app_key
        self.alipay_key = alipay_key
        self.bills = bills
        self.published = published
        self.tamper = False  # change the answer after signing it
        self._files: dict[str, bytes] = {}
        self.params: list[dict[str, str]] = []

    def answer(self, request: Request) -> Reply:
        path = urlsplit(request.path).path
        if path == "/downloadBillFile.resource":
            content = self._files.pop(_query(request.path).get("fileId", ""), None)
            if content is None:
                return Reply(404, b"expired")
            return Reply(200, content, {"Content-Type": "application/oct-stream"})
        if request.method != "POST" or path != "/gateway.do":
            return Reply(404, b"not found")
        form = {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        self.params.append(form)
        text = "&".join(f"{k}={v}" for k, v in sorted(form.items()) if k != "sign" and v)
        if not rsa_verifies(self.app_key, text.encode(), form.get("sign", "")):
            error = {"code": "40002", "msg": "Invalid Arguments"}
            error |= {"sub_code": "isv.invalid-signature", "sub_msg": "验签出错"}
            return Reply.json(200, {ALIPAY_NODE: error})  # Alipay leaves these unsigned
        if form.get("app_id") != self.app_id or form.get("sign_type") != "RSA2":
            return self._signed({"code": "40002", "msg": "Invalid Arguments"})
        biz = json.loads(form.get("biz_content", "{}"))
        day, bill_type = date.fromisoformat(biz["bill_date"]), biz["bill_type"]
        content = self.bills.get((day, bill_type))
        if not self.published(day) or content is None:
            node = {"code": "40004", "msg": "Business Failed"}
            return self._signed(node | {"sub_code": "isp.bill_not_exist", "sub_msg": "账单不存在"})
        file_id = secrets.token_hex(8)
        self._files[file_id] = content
        url = f"{self.url}/downloadBillFile.resource?bizType={bill_type}&fileId={file_id}"
        return self._signed({"code": "10000", "msg": "Success", "bill_download_url": url})

    def _signed(self, node: dict[str, str]) -> Reply:
        # Written like Alipay's Java gateway: "/" escaped as "\/"; the signature covers
        # the node's text exactly as sent, which a client must not re-serialise.
        text = json.dumps(node, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
        signature = rsa_sign(self.alipay_key, text.encode())
        if self.tamper:
            text = text.replace("Success", "Succes5")
        body = f'{{"{ALIPAY_NODE}":{text},"sign":"{signature}"}}'
        return Reply(200, body.encode(), {"Content-Type": "text/html;charset=utf-8"})


class FileServer(HttpApp):
    """Files by path, 404 for others; ``redirects`` maps a path to a Location."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__()
        self.files = files
        self.redirects: dict[str, str] = {}

    def answer(self, request: Request) -> Reply:
        path = urlsplit(request.path).path
        if path in self.redirects:
            return Reply(302, b"", {"Location": self.redirects[path]})
        if path in self.files:
            return Reply(200, self.files[path], {"Content-Type": "text/csv"})
        return Reply(404, b"not found")


class SftpServer:
    """asyncssh's SFTP server on 127.0.0.1, chrooted to ``root``, key auth only."""

    def __init__(self, root: Path, host_key: asyncssh.SSHKey, client_key: asyncssh.SSHKey):
        self.root = root
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

        async def listen() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1",
                0,
                server_host_keys=[host_key],
                authorized_client_keys=authorized,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
                allow_scp=False,
            )

        self._acceptor = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(WAIT_S)
        self.port: int = self._acceptor.get_port()
        self.host_key_line = f"[127.0.0.1]:{self.port} " + host_key.export_public_key().decode()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        async def stop() -> None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(WAIT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT_S)
        self._loop.close()
