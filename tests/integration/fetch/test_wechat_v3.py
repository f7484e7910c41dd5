"""WeChat Pay API v3 bills against a server that checks signatures as WeChat does."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from payrecon.config import Settings
from payrecon.errors import (
    BillDeadlineError,
    BillIntegrityError,
    ChannelAuthError,
    HostNotAllowedError,
)
from payrecon.fetch.factory import open_fetcher
from payrecon.fetch.retry import fetch_with_retry
from payrecon.fetch.run import bill_store, fetch_bills
from payrecon.stream.backoff import Backoff
from tests.integration.fetch.conftest import (
    DAY,
    WECHAT_MERCHANT,
    Bills,
    FakeClock,
    Keys,
    parsed_rows,
    pem_private,
    pem_public,
)
from tests.integration.fetch.servers import WechatV3Api

SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
TEN_MINUTES = Backoff(600.0, 2.0, 1800.0)


@pytest.fixture
def api(keys: Keys, bills: Bills) -> Iterator[WechatV3Api]:
    with WechatV3Api(
        mchid=WECHAT_MERCHANT,
        serial_no=SERIAL,
        merchant_key=keys.merchant.public_key(),
        platform_key=keys.platform,
        bills={(DAY, "ALL"): bills.wechat, (DAY, "fundflow-BASIC"): bills.fundflow},
    ) as server:
        yield server
        assert server.errors == []


def v3_source(
    tmp_path: Path,
    api: WechatV3Api,
    merchant_key: rsa.RSAPrivateKey,
    platform_key: rsa.RSAPublicKey,
) -> dict[str, Any]:
    """A ``[fetch.channels.wechat.<merchant>]`` table, keys written to files."""
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_bytes(pem_private(merchant_key))
    platform_file = tmp_path / "wechatpay_public_key.pem"
    platform_file.write_bytes(pem_public(platform_key))
    return {
        "kind": "wechat_v3",
        "serial_no": SERIAL,
        "private_key_file": str(key_file),
        "platform_public_key_file": str(platform_file),
        "fundflow_accounts": ["BASIC"],
        "base_url": api.url,
    }


def settings_with(tmp_path: Path, source: dict[str, Any]) -> Settings:
    fetch = {"channels": {"wechat": {WECHAT_MERCHANT: source}}}
    return Settings(home=tmp_path / "home", fetch=fetch)


@pytest.fixture
def settings(tmp_path: Path, api: WechatV3Api, keys: Keys) -> Settings:
    source = v3_source(tmp_path, api, keys.merchant, keys.platform.public_key())
    return settings_with(tmp_path, source)


def test_signed_fetch_stores_bills_that_parse(
    settings: Settings, api: WechatV3Api, bills: Bills
) -> None:
    stored = {bill.provenance.bill_type: bill for bill in fetch_bills(settings, "wechat", DAY)}

    assert sorted(stored) == ["ALL", "fundflow-BASIC"]
    trade = stored["ALL"]
    assert trade.status == "new" and not trade.changed
    assert trade.sha256 == hashlib.sha256(bills.wechat).hexdigest()
    assert trade.path.read_bytes() == bills.wechat  # un-gzipped on the way
    assert parsed_rows("wechat", trade.path) == bills.wechat_rows
    assert stored["fundflow-BASIC"].path.read_bytes() == bills.fundflow
    assert trade.provenance.source == f"{api.url}/v3/billdownload/file"
    # Both bill queries and both downloads carried an Authorization the server verified.
    paths = [urlsplit(path).path for path in api.authorized]
    query, download = "/v3/bill/tradebill", "/v3/billdownload/file"
    assert paths == [query, download, "/v3/bill/fundflowbill", download]
    assert "tar_type=GZIP" in api.authorized[0] and "bill_date=2026-11-20" in api.authorized[0]


def test_a_download_that_does_not_match_its_sha1_is_refused(
    settings: Settings, api: WechatV3Api
) -> None:
    api.tamper = True

    with pytest.raises(BillIntegrityError, match=r"SHA1 \w+ is not the hash_value"):
        fetch_bills(settings, "wechat", DAY)

    store = bill_store(settings)
    assert store.bills("wechat", WECHAT_MERCHANT, DAY) == []
    assert list(store.staging.iterdir()) == []


def test_a_request_signed_with_the_wrong_key_is_refused_with_401(
    tmp_path: Path, api: WechatV3Api, keys: Keys
) -> None:
    source = v3_source(tmp_path, api, keys.stranger, keys.platform.public_key())

    with pytest.raises(ChannelAuthError, match="SIGN_ERROR") as caught:
        fetch_bills(settings_with(tmp_path, source), "wechat", DAY)

    assert "签名错误" in str(caught.value)
    assert api.authorized == []


def test_an_answer_not_signed_by_the_platform_key_is_refused(
    tmp_path: Path, api: WechatV3Api, keys: Keys
) -> None:
    source = v3_source(tmp_path, api, keys.merchant, keys.stranger.public_key())

    with pytest.raises(BillIntegrityError, match="signature does not verify"):
        fetch_bills(settings_with(tmp_path, source), "wechat", DAY)

    assert len(api.authorized) == 1  # the download was never asked for


def test_a_download_url_on_another_host_gets_no_signed_request(
    settings: Settings, api: WechatV3Api
) -> None:
    api.download_host = f"localhost:{api.port}"

    with pytest.raises(HostNotAllowedError, match="not on the API host"):
        fetch_bills(settings, "wechat", DAY)

    assert len(api.requests) == 1


def test_not_generated_yet_is_retried_until_the_bill_is_published(
    settings: Settings, api: WechatV3Api, clock: FakeClock, staging: Path, bills: Bills
) -> None:
    api.published = clock.published_at(10)  # the clock starts at 09:00
    source = settings.fetch.channels["wechat"][WECHAT_MERCHANT]

    with open_fetcher("wechat", WECHAT_MERCHANT, source, settings.fetch, staging) as fetcher:
        files = fetch_with_retry(
            fetcher,
            "wechat",
            WECHAT_MERCHANT,
            DAY,
            deadline=timedelta(hours=2),
            backoff=TEN_MINUTES,
            sleep=clock.sleep,
            clock=clock.monotonic,
        )

    # 09:00, 09:10, 09:30 answer STATEMENT_CREATING; 10:00 serves the bill.
    assert clock.slept == [600.0, 1200.0, 1800.0]
    assert [f.provenance.bill_type for f in files] == ["ALL", "fundflow-BASIC"]
    assert files[0].path.read_bytes() == bills.wechat
    for fetched in files:
        fetched.path.unlink()


def test_still_not_published_at_the_deadline_fails_clearly(
    settings: Settings, api: WechatV3Api, clock: FakeClock, staging: Path
) -> None:
    api.published = clock.published_at(10)
    source = settings.fetch.channels["wechat"][WECHAT_MERCHANT]

    with (
        open_fetcher("wechat", WECHAT_MERCHANT, source, settings.fetch, staging) as fetcher,
        pytest.raises(BillDeadlineError) as caught,
    ):
        fetch_with_retry(
            fetcher,
            "wechat",
            WECHAT_MERCHANT,
            DAY,
            deadline=timedelta(minutes=30),
            backoff=TEN_MINUTES,
            sleep=clock.sleep,
            clock=clock.monotonic,
        )

    message = str(caught.value)
    assert "still not published (3 attempts until the deadline (30m))" in message
    assert "STATEMENT_CREATING" in message and WECHAT_MERCHANT in message
    assert clock.slept == [600.0, 1200.0]  # the last attempt is at the deadline itself
