"""Request signatures built by the fetchers, checked with ``cryptography`` directly."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payrecon.errors import ConfigError
from payrecon.fetch import keys
from payrecon.fetch.alipay import AlipayCredentials, AlipayFetcher, response_text
from payrecon.fetch.wechat_v2 import WechatV2Credentials, WechatV2Fetcher
from payrecon.fetch.wechat_v3 import WechatV3Credentials, WechatV3Fetcher
from tests.unit.fetch.helpers import DAY

NOW = datetime(2026, 11, 21, 2, 5, 9, tzinfo=UTC)  # 10:05:09 in Beijing


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def verify(public: rsa.RSAPublicKey, message: bytes, signature: str) -> None:
    public.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())


def test_wechat_v3_authorization_signs_method_path_query_time_nonce_and_body(
    key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    credentials = WechatV3Credentials("1900009191", "SERIAL01", key)
    with httpx.Client() as client:
        fetcher = WechatV3Fetcher(
            credentials, client, tmp_path, now=lambda: NOW, nonce=lambda: "593BEC0C930BF1AF"
        )
        url = httpx.URL("https://api.mch.weixin.qq.com/v3/bill/tradebill?bill_date=2026-11-20")
        header = fetcher.authorization("GET", url)

    scheme, _, rest = header.partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert fields.keys() == {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    assert (fields["mchid"], fields["serial_no"]) == ("1900009191", "SERIAL01")
    assert fields["timestamp"] == str(int(NOW.timestamp()))
    message = f"GET\n/v3/bill/tradebill?bill_date=2026-11-20\n{fields['timestamp']}\n"
    verify(key.public_key(), (message + "593BEC0C930BF1AF\n\n").encode(), fields["signature"])
    with pytest.raises(InvalidSignature):  # the path and query are part of what is signed
        other = message.replace("2026-11-20", "2026-11-21") + "593BEC0C930BF1AF\n\n"
        verify(key.public_key(), other.encode(), fields["signature"])


def test_wechat_v2_params_carry_the_sign_type_unless_md5(tmp_path: Path) -> None:
    with httpx.Client() as client:
        made = {
            sign_type: WechatV2Fetcher(
                WechatV2Credentials("wx1", "1601959334", "k" * 32, sign_type),
                client,
                tmp_path,
                nonce=lambda: "n0nce",
            ).request_params(DAY, "ALL")
            for sign_type in ("MD5", "HMAC-SHA256")
        }

    assert made["MD5"]["bill_date"] == "20261120" and "sign_type" not in made["MD5"]
    assert made["HMAC-SHA256"]["sign_type"] == "HMAC-SHA256"
    assert len(made["MD5"]["sign"]) == 32 and len(made["HMAC-SHA256"]["sign"]) == 64


def test_alipay_request_is_rsa2_signed_over_the_sorted_parameters(
    key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    credentials = AlipayCredentials("2021000000000001", key, key.public_key())
    with httpx.Client() as client:
        params = AlipayFetcher(credentials, client, tmp_path, now=lambda: NOW).request_params(
            DAY, "trade"
        )

    assert params["timestamp"] == "2026-11-21 10:05:09"  # Beijing time
    assert json.loads(params["biz_content"]) == {"bill_type": "trade", "bill_date": "2026-11-20"}
    signed = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign")
    assert signed.startswith("app_id=2021000000000001&biz_content={")
    verify(key.public_key(), signed.encode(), params["sign"])


def test_alipay_response_text_is_the_node_exactly_as_sent() -> None:
    body = '{"x_response" : {"code":"10000","url":"http:\\/\\/h\\/f"}, "sign":"abc"}'

    assert response_text(body, "x_response") == '{"code":"10000","url":"http:\\/\\/h\\/f"}'
    assert response_text(body, "y_response") is None


def test_keys_load_from_pem_certificate_free_base64_and_refuse_others(
    key: rsa.RSAPrivateKey,
) -> None:
    pkcs1_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    private = keys.load_private_key(base64.b64encode(pkcs1_der), "app key")
    public = keys.load_public_key(base64.b64encode(public_der), "alipay key")
    assert keys.verify(public, b"m", keys.sign(private, b"m"))
    assert not keys.verify(public, b"other", keys.sign(private, b"m"))
    assert not keys.verify(public, b"m", "not base64!")
    with pytest.raises(ConfigError, match="merchant key: neither PEM nor base64"):
        keys.load_private_key(b"%%%", "merchant key")
    with pytest.raises(ConfigError, match="not a readable"):
        keys.load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "k")
