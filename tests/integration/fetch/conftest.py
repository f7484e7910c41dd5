"""Keys, generated bills and a controllable clock for the fetch protocol tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payrecon.bills.registry import bill_parser
from payrecon.config import Settings
from payrecon.generator import generate_day

DAY = date(2026, 11, 20)
WECHAT_MERCHANT = "1601959334"
ALIPAY_MERCHANT = "2088123456789012"
BEIJING = timezone(timedelta(hours=8))
FIXTURES = Path(__file__).parents[2] / "fixtures" / "bills"


class FakeClock:
    """Beijing time that only moves when the code under test sleeps."""

    def __init__(self, start: datetime) -> None:
        self.at = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)

    def published_at(self, hour: int) -> Callable[[date], bool]:
        """A ``published(day)`` for the servers: true from ``hour`` o'clock on day + 1."""

        def published(day: date) -> bool:
            opens = datetime.combine(day + timedelta(days=1), datetime.min.time(), BEIJING)
            return self.at >= opens + timedelta(hours=hour)

        return published


@pytest.fixture
def clock() -> FakeClock:
    """09:00 on the morning after DAY, when WeChat starts generating bills."""
    morning = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), BEIJING)
    return FakeClock(morning + timedelta(hours=9))


def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Keys:
    merchant: rsa.RSAPrivateKey
    platform: rsa.RSAPrivateKey
    alipay_app: rsa.RSAPrivateKey
    alipay: rsa.RSAPrivateKey
    stranger: rsa.RSAPrivateKey  # nobody's: signs what must not verify


@pytest.fixture(scope="session")
def keys() -> Keys:
    def new() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(new(), new(), new(), new(), new())


@dataclass(frozen=True)
class Bills:
    wechat: bytes  # ALL trade bill, real format
    wechat_rows: int
    wechat_other: bytes  # another day's content for the same merchant (a re-published bill)
    fundflow: bytes
    alipay: bytes  # trade zip
    alipay_rows: int


@pytest.fixture(scope="session")
def bills(tmp_path_factory: pytest.TempPathFactory) -> Bills:
    root = tmp_path_factory.mktemp("generated")
    wechat = generate_day("wechat", DAY, 60, root / "w", merchant_id=WECHAT_MERCHANT)
    other = generate_day("wechat", DAY, 61, root / "w2", seed=7, merchant_id=WECHAT_MERCHANT)
    alipay = generate_day("alipay", DAY, 40, root / "a", merchant_id=ALIPAY_MERCHANT)
    return Bills(
        wechat=wechat.bills[0].read_bytes(),
        wechat_rows=wechat.rows,
        wechat_other=other.bills[0].read_bytes(),
        fundflow=(FIXTURES / "wechat" / "v3_fundflowbill_BASIC_gunsluo.csv").read_bytes(),
        alipay=alipay.bills[0].read_bytes(),
        alipay_rows=alipay.rows,
    )


def parsed_rows(channel: str, path: Path) -> int:
    """Rows of a stored bill read by the real parser, whose footer check must pass."""
    parser = bill_parser(channel, path, Settings())
    rows: int = sum(batch.num_rows for batch in parser.batches())
    assert parser.footer is not None and parser.footer.status == "ok"
    return rows


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[Path]:
    """A staging folder that must be empty again when the test ends."""
    folder = tmp_path / "staging"
    folder.mkdir()
    yield folder
    assert sorted(folder.iterdir()) == []
