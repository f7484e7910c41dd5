"""WeChat Pay API v2 ``downloadbill`` against a server that checks the sign as WeChat does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from payrecon.config import Settings
from payrecon.errors import BillNotReadyError, ChannelAuthError, ChannelErrorResponse
from payrecon.fetch.factory import open_fetcher
from payrecon.fetch.retry import fetch_with_retry
from payrecon.fetch.run import fetch_bills
from payrecon.stream.backoff import Backoff
from tests.integration.fetch.conftest import (
    DAY,
    WECHAT_MERCHANT,
    Bills,
    FakeClock,
    parsed_rows,
)
from tests.integration.fetch.servers import WechatV2Api

APPID = "wx8888888888888888"
API_KEY = "192006250b4c09247ec02edce69f6a2d"


@pytest.fixture
def api(bills: Bills) -> Iterator[WechatV2Api]:
    served = {(DAY, "ALL"): bills.wechat}
    with WechatV2Api(appid=APPID, mch_id=WECHAT_MERCHANT, api_key=API_KEY, bills=served) as api:
        yield api
        assert api.errors == []


def settings_for(
    tmp_path: Path, api: WechatV2Api, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Settings:
    monkeypatch.setenv("TEST_WECHAT_V2_KEY", options.pop("api_key", API_KEY))
    source = {
        "kind": "wechat_v2",
        "appid": APPID,
        "api_key_env": "TEST_WECHAT_V2_KEY",
        "base_url": api.url,
        **options,
    }
    fetch = {"channels": {"wechat": {WECHAT_MERCHANT: source}}}
    return Settings(home=tmp_path / "home", fetch=fetch)


@pytest.mark.parametrize(
    ("sign_type", "gzip"), [("MD5", True), ("HMAC-SHA256", False), ("HMAC-SHA256", True)]
)
def test_signed_downloadbill_stores_a_bill_that_parses(
    tmp_path: Path,
    api: WechatV2Api,
    bills: Bills,
    monkeypatch: pytest.MonkeyPatch,
    sign_type: str,
    gzip: bool,
) -> None:
    settings = settings_for(tmp_path, api, monkeypatch, sign_type=sign_type, gzip=gzip)

    [stored] = fetch_bills(settings, "wechat", DAY)

    assert api.sign_types == [sign_type]
    assert stored.path.read_bytes() == bills.wechat
    assert stored.provenance.bill_type == "ALL"
    assert parsed_rows("wechat", stored.path) == bills.wechat_rows


def test_a_wrong_api_key_is_refused_as_a_signature_error(
    tmp_path: Path, api: WechatV2Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, api, monkeypatch, api_key="0" * 32)

    with pytest.raises(ChannelAuthError, match="签名错误"):
        fetch_bills(settings, "wechat", DAY)


def test_no_bill_exist_before_the_publish_hour_is_retried(
    tmp_path: Path,
    api: WechatV2Api,
    clock: FakeClock,
    staging: Path,
    bills: Bills,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api.published = clock.published_at(10)
    settings = settings_for(tmp_path, api, monkeypatch)
    source = settings.fetch.channels["wechat"][WECHAT_MERCHANT]
    with open_fetcher("wechat", WECHAT_MERCHANT, source, settings.fetch, staging) as fetcher:
        with pytest.raises(BillNotReadyError, match="No Bill Exist"):
            fetcher.fetch("wechat", WECHAT_MERCHANT, DAY)
        [fetched] = fetch_with_retry(
            fetcher,
            "wechat",
            WECHAT_MERCHANT,
            DAY,
            deadline=timedelta(hours=3),
            backoff=Backoff(900.0, 2.0, 3600.0),
            sleep=clock.sleep,
            clock=clock.monotonic,
        )

    # 09:00, 09:15 and 09:45 answer No Bill Exist; 10:45 serves the bill.
    assert clock.slept == [900.0, 1800.0, 3600.0]
    assert fetched.path.read_bytes() == bills.wechat
    fetched.path.unlink()


def test_an_invalid_bill_date_fails_at_once_without_retrying(
    tmp_path: Path, api: WechatV2Api, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.oldest = DAY - timedelta(days=90)  # WeChat keeps bills for 3 months
    settings = settings_for(tmp_path, api, monkeypatch)
    source = settings.fetch.channels["wechat"][WECHAT_MERCHANT]
    staging = tmp_path / "staging"

    with (
        open_fetcher("wechat", WECHAT_MERCHANT, source, settings.fetch, staging) as fetcher,
        pytest.raises(ChannelErrorResponse, match=r"invalid bill_date \(error_code 20001\)"),
    ):
        fetch_with_retry(
            fetcher,
            "wechat",
            WECHAT_MERCHANT,
            DAY - timedelta(days=200),
            deadline=timedelta(hours=1),
            sleep=clock.sleep,
            clock=clock.monotonic,
        )

    assert clock.slept == []
    assert list(staging.iterdir()) == []
