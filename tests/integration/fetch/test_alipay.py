"""Alipay ``bill.downloadurl.query`` against a gateway that checks and signs as Alipay does."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from payrecon.config import Settings
from payrecon.errors import BillDeadlineError, BillIntegrityError, ChannelAuthError
from payrecon.fetch.run import fetch_bills
from tests.integration.fetch.conftest import (
    ALIPAY_MERCHANT,
    DAY,
    Bills,
    FakeClock,
    Keys,
    parsed_rows,
    pem_private,
)
from tests.integration.fetch.servers import AlipayGateway

APP_ID = "2021000000000001"


@pytest.fixture
def gateway(keys: Keys, bills: Bills) -> Iterator[AlipayGateway]:
    with AlipayGateway(
        app_id=APP_ID,
        app_key=keys.alipay_app.public_key(),
        alipay_key=keys.alipay,
        bills={(DAY, "trade"): bills.alipay},
    ) as server:
        yield server
        assert server.errors == []


def settings_for(
    tmp_path: Path, gateway: AlipayGateway, keys: Keys, *, app_key: bytes | None = None
) -> Settings:
    app_file = tmp_path / "app_private_key.pem"
    app_file.write_bytes(app_key or pem_private(keys.alipay_app))
    # Alipay's console shows its public key as one line of base64, without PEM lines.
    alipay_public = keys.alipay.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_file = tmp_path / "alipay_public_key.txt"
    public_file.write_bytes(base64.b64encode(alipay_public))
    source = {
        "kind": "alipay",
        "app_id": APP_ID,
        "private_key_file": str(app_file),
        "alipay_public_key_file": str(public_file),
        "gateway": f"{gateway.url}/gateway.do",
    }
    fetch = {"channels": {"alipay": {ALIPAY_MERCHANT: source}}}
    return Settings(home=tmp_path / "home", fetch=fetch)


def test_rsa2_query_then_zip_stores_a_bill_that_parses(
    tmp_path: Path, gateway: AlipayGateway, keys: Keys, bills: Bills
) -> None:
    [stored] = fetch_bills(settings_for(tmp_path, gateway, keys), "alipay", DAY)

    assert stored.path.read_bytes() == bills.alipay
    assert stored.provenance.bill_type == "trade"
    assert stored.name == f"alipay_{ALIPAY_MERCHANT}_2026-11-20_trade.csv.zip"
    assert parsed_rows("alipay", stored.path) == bills.alipay_rows
    [params] = gateway.params
    assert params["method"] == "alipay.data.dataservice.bill.downloadurl.query"
    assert json.loads(params["biz_content"]) == {"bill_type": "trade", "bill_date": "2026-11-20"}


def test_bill_not_exist_is_retried_until_the_deadline(
    tmp_path: Path, gateway: AlipayGateway, keys: Keys, clock: FakeClock
) -> None:
    gateway.published = clock.published_at(12)  # clock starts at 09:00
    settings = settings_for(tmp_path, gateway, keys)

    with pytest.raises(BillDeadlineError, match=r"isp\.bill_not_exist"):
        fetch_bills(
            settings,
            "alipay",
            DAY,
            deadline=timedelta(hours=1),
            sleep=clock.sleep,
            clock=clock.monotonic,
        )

    # The default backoff (fetch.retry_initial_seconds 60, doubling, at most 900) fills the
    # hour exactly; the eighth attempt is at the deadline.
    assert clock.slept == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]
    assert len(gateway.params) == 8


def test_a_request_signed_with_another_key_is_refused(
    tmp_path: Path, gateway: AlipayGateway, keys: Keys
) -> None:
    settings = settings_for(tmp_path, gateway, keys, app_key=pem_private(keys.stranger))

    with pytest.raises(ChannelAuthError, match=r"isv\.invalid-signature"):
        fetch_bills(settings, "alipay", DAY)


def test_an_answer_altered_after_alipay_signed_it_is_refused(
    tmp_path: Path, gateway: AlipayGateway, keys: Keys
) -> None:
    gateway.tamper = True

    with pytest.raises(BillIntegrityError, match="signature does not verify"):
        fetch_bills(settings_for(tmp_path, gateway, keys), "alipay", DAY)

    assert [r.path.split("?")[0] for r in gateway.requests] == ["/gateway.do"]
