"""What the channels' error answers mean for a fetch, and the ``[fetch]`` settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payrecon.config import HttpSource, WechatV3Source, load_settings
from payrecon.errors import (
    BillNotReadyError,
    ChannelAuthError,
    ChannelErrorResponse,
    ChannelUnavailableError,
    ConfigError,
    FetchError,
)
from payrecon.fetch.alipay import _failure as alipay_failure
from payrecon.fetch.transfer import status_error
from payrecon.fetch.wechat import raise_failure


def fail_xml(message: str, code: str = "") -> bytes:
    error = f"<error_code><![CDATA[{code}]]></error_code>" if code else ""
    xml = "<xml><return_code><![CDATA[FAIL]]></return_code>"
    return f"{xml}<return_msg><![CDATA[{message}]]></return_msg>{error}</xml>".encode()


def v3_error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("body", "status", "error", "text"),
    [
        (fail_xml("No Bill Exist", "20002"), None, BillNotReadyError, "No Bill Exist"),
        (fail_xml("invalid bill_date", "20001"), None, ChannelErrorResponse, "20001"),
        (fail_xml("签名错误"), None, ChannelAuthError, "签名错误"),
        (v3_error("NO_STATEMENT_EXIST", "账单文件不存在"), 400, BillNotReadyError, "账单"),
        (v3_error("STATEMENT_CREATING", "账单生成中"), 400, BillNotReadyError, "CREATING"),
        (v3_error("SIGN_ERROR", "签名错误"), 401, ChannelAuthError, "SIGN_ERROR"),
        (v3_error("SYSTEM_ERROR", "系统错误"), 500, ChannelUnavailableError, "SYSTEM_ERROR"),
        (v3_error("PARAM_ERROR", "参数错误"), 400, ChannelErrorResponse, "PARAM_ERROR"),
        (b"<html>Bad Gateway</html>", 502, ChannelUnavailableError, "HTTP 502"),
    ],
)
def test_wechat_answers(body: bytes, status: int | None, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as caught:
        raise_failure(body, "https://api.mch.weixin.qq.com/pay/downloadbill", status)

    if error is not ChannelErrorResponse and not body.startswith(b"<html>"):
        # A channel error answer stays attached as the cause.
        assert isinstance(caught.value.__cause__, ChannelErrorResponse)


@pytest.mark.parametrize(
    ("node", "error"),
    [
        ({"code": "40004", "sub_code": "isp.bill_not_exist"}, BillNotReadyError),
        ({"code": "40002", "sub_code": "isv.invalid-signature"}, ChannelAuthError),
        ({"code": "20000", "sub_code": "isp.unknow-error"}, ChannelUnavailableError),
        ({"code": "40004", "sub_code": "isp.bill_date_error"}, ChannelErrorResponse),
    ],
)
def test_alipay_answers(node: dict[str, str], error: type) -> None:
    assert type(alipay_failure(node, "Alipay trade bill")) is error


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ChannelAuthError),
        (404, BillNotReadyError),
        (410, BillNotReadyError),
        (429, ChannelUnavailableError),
        (503, ChannelUnavailableError),
        (400, FetchError),
    ],
)
def test_http_statuses(status: int, error: type) -> None:
    assert type(status_error(status, "https://bank.example/bill.csv")) is error


def test_fetch_settings_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "payrecon.toml"
    path.write_text(
        """
[fetch]
deadline_seconds = 7200

[fetch.channels.wechat.1601959334]
kind = "wechat_v3"
serial_no = "5157F09EFDC096DE"
private_key_file = "/etc/payrecon/apiclient_key.pem"
bill_types = ["ALL", "REFUND"]

[fetch.channels.bank.acme]
kind = "http"
url = "https://files.acme.example/{merchant}/{date:%Y%m%d}.csv"
allowed_hosts = ["files.acme.example"]
headers_env = { Authorization = "ACME_TOKEN" }
""",
        encoding="utf-8",
    )

    fetch = load_settings(path).fetch

    assert fetch.deadline_seconds == 7200
    wechat = fetch.channels["wechat"]["1601959334"]
    assert isinstance(wechat, WechatV3Source) and wechat.bill_types == ("ALL", "REFUND")
    assert isinstance(fetch.channels["bank"]["acme"], HttpSource)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({"kind": "wechat_v3", "serial_no": "S"}, "exactly one of private_key_file"),
        (
            {"kind": "wechat_v2", "appid": "wx", "api_key_file": "k", "api_key_env": "K"},
            "exactly one of api_key_file or api_key_env",
        ),
        ({"kind": "http", "url": "https://h/x", "allowed_hosts": []}, "allowed_hosts"),
        ({"kind": "ftp", "host": "h"}, "does not match any of the expected tags"),
    ],
)
def test_invalid_fetch_sources_are_config_errors(source: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(None, fetch={"channels": {"wechat": {"m": source}}})
