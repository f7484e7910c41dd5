"""The hashing spool, templates, secrets, and the local-folder fetcher."""

from __future__ import annotations

import doctest
import gzip
import hashlib
import importlib
from datetime import date
from pathlib import Path

import pytest

from payrecon.errors import BillIntegrityError, BillNotReadyError, ConfigError
from payrecon.fetch.base import Spool, expand, fetch_all, read_secret
from payrecon.fetch.local import LocalFetcher
from tests.unit.fetch.helpers import DAY, fetched

BILL = "交易时间,商户号\n`2026-11-20 10:00:00,`1601959334\n".encode() * 50


def spool_in_pieces(staging: Path, data: bytes, *, gunzip: bool, piece: int = 7) -> Spool:
    spool = Spool(staging, gunzip=gunzip)
    for start in range(0, len(data), piece):
        spool.write(data[start : start + piece])
    return spool


def test_gzip_is_undone_while_spooling_and_hashes_describe_the_bill(tmp_path: Path) -> None:
    # Two gzip members, fed in pieces that split the magic and the member boundary.
    data = gzip.compress(BILL[:100]) + gzip.compress(BILL[100:])

    spooled = spool_in_pieces(tmp_path, data, gunzip=True, piece=1).finish()

    assert spooled.path.read_bytes() == BILL
    assert spooled.sha256 == hashlib.sha256(BILL).hexdigest()
    assert spooled.sha1 == hashlib.sha1(BILL).hexdigest()
    assert (spooled.size, spooled.head) == (len(BILL), BILL)


def test_a_plain_body_passes_through_unchanged_even_with_gunzip(tmp_path: Path) -> None:
    spooled = spool_in_pieces(tmp_path, b"<xml>FAIL</xml>", gunzip=True).finish()

    assert spooled.path.read_bytes() == spooled.head == b"<xml>FAIL</xml>"


def test_without_gunzip_gzip_is_stored_as_it_came(tmp_path: Path) -> None:
    data = gzip.compress(BILL)

    assert spool_in_pieces(tmp_path, data, gunzip=False).finish().path.read_bytes() == data


def test_a_cut_gzip_stream_is_an_integrity_error_and_leaves_no_file(tmp_path: Path) -> None:
    spool = spool_in_pieces(tmp_path, gzip.compress(BILL)[:-20], gunzip=True)

    with pytest.raises(BillIntegrityError, match="cut short"):
        spool.finish()

    assert list(tmp_path.iterdir()) == []


def test_an_abandoned_spool_removes_its_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Spool(tmp_path) as spool:
        spool.write(b"half a bill")
        raise RuntimeError("connection lost")

    assert list(tmp_path.iterdir()) == []


def test_fetch_all_removes_earlier_files_when_a_later_one_fails(tmp_path: Path) -> None:
    def not_ready() -> None:
        raise BillNotReadyError("no REFUND bill yet")

    with pytest.raises(BillNotReadyError):
        fetch_all([lambda: fetched(tmp_path, b"ALL"), not_ready])  # type: ignore[list-item]

    assert list(tmp_path.iterdir()) == []


def test_templates_take_channel_merchant_and_formatted_dates() -> None:
    filled = expand("{channel}/{merchant}/{date:%Y%m%d}/{date}", channel="c", merchant="m", day=DAY)

    assert filled == "c/m/20261120/2026-11-20"
    with pytest.raises(ConfigError, match="placeholders are"):
        expand("{day}.csv", channel="c", merchant="m", day=DAY)


def test_secrets_come_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("s3cret\n")
    monkeypatch.setenv("TEST_FETCH_SECRET", "from-env")

    assert read_secret(tmp_path / "key", None, "api_key") == b"s3cret"
    assert read_secret(None, "TEST_FETCH_SECRET", "api_key") == b"from-env"
    with pytest.raises(ConfigError, match="api_key: cannot read"):
        read_secret(tmp_path / "missing", None, "api_key")
    with pytest.raises(ConfigError, match="TEST_FETCH_UNSET is not set"):
        read_secret(None, "TEST_FETCH_UNSET", "api_key")


def test_the_local_fetcher_copies_the_files_of_the_day(tmp_path: Path) -> None:
    drop = tmp_path / "drop" / "bank-a"
    drop.mkdir(parents=True)
    (drop / "ZM_20261120_01.txt").write_bytes(b"first")
    (drop / "ZM_20261120_02.txt").write_bytes(b"second")
    (drop / "ZM_20261121_01.txt").write_bytes(b"tomorrow")
    fetcher = LocalFetcher(tmp_path / "drop", "{merchant}/ZM_{date:%Y%m%d}_*.txt", tmp_path / "s")

    files = fetcher.fetch("unionpay", "bank-a", DAY)

    assert [(f.name, f.path.read_bytes()) for f in files] == [
        ("ZM_20261120_01.txt", b"first"),
        ("ZM_20261120_02.txt", b"second"),
    ]
    assert files[0].provenance.source == str(drop / "ZM_20261120_01.txt")
    assert files[0].provenance.bill_type == "ZM_20261120_01.txt"
    with pytest.raises(BillNotReadyError, match="no file matches"):
        fetcher.fetch("unionpay", "bank-a", date(2026, 11, 22))
    with pytest.raises(ConfigError, match="does not exist"):
        LocalFetcher(tmp_path / "nowhere", "*", tmp_path / "s").fetch("c", "m", DAY)


@pytest.mark.parametrize(
    "module",
    ["base", "retry", "wechat_v2", "alipay"],
)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"payrecon.fetch.{module}"))

    assert result.attempted > 0 and result.failed == 0
