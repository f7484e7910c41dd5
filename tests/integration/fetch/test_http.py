"""The HTTP(S) URL fetcher: allow-listed hosts only, redirects checked hop by hop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from payrecon.config import Settings
from payrecon.errors import BillNotReadyError, HostNotAllowedError
from payrecon.fetch.run import fetch_bills
from tests.integration.fetch.conftest import DAY, Bills, parsed_rows
from tests.integration.fetch.servers import FileServer

MERCHANT = "1601959334"


@pytest.fixture
def files(bills: Bills) -> Iterator[FileServer]:
    with FileServer({f"/bills/{MERCHANT}/20261120.csv": bills.wechat}) as server:
        yield server
        assert server.errors == []


def settings_for(tmp_path: Path, url: str, **options: Any) -> Settings:
    source = {"kind": "http", "url": url, "allowed_hosts": ["127.0.0.1"], **options}
    fetch = {"channels": {"wechat": {MERCHANT: source}}}
    return Settings(home=tmp_path / "home", fetch=fetch)


def test_a_url_on_an_allowed_host_is_fetched(
    tmp_path: Path, files: FileServer, bills: Bills, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BANK_TOKEN", "Bearer s3cret")
    url = files.url + "/bills/{merchant}/{date:%Y%m%d}.csv"
    settings = settings_for(tmp_path, url, headers_env={"Authorization": "TEST_BANK_TOKEN"})

    [stored] = fetch_bills(settings, "wechat", DAY)

    assert stored.name == "20261120.csv"
    assert parsed_rows("wechat", stored.path) == bills.wechat_rows
    assert files.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_a_host_outside_the_allow_list_is_never_contacted(
    tmp_path: Path, files: FileServer
) -> None:
    url = f"http://localhost:{files.port}/bills/{{merchant}}/{{date:%Y%m%d}}.csv"

    with pytest.raises(HostNotAllowedError, match="host localhost is not in allowed_hosts"):
        fetch_bills(settings_for(tmp_path, url), "wechat", DAY)

    assert files.requests == []


def test_a_redirect_to_another_host_is_refused(tmp_path: Path, files: FileServer) -> None:
    files.redirects["/moved.csv"] = f"http://localhost:{files.port}/bills/{MERCHANT}/20261120.csv"

    with pytest.raises(HostNotAllowedError, match="localhost"):
        fetch_bills(settings_for(tmp_path, files.url + "/moved.csv"), "wechat", DAY)

    assert [request.path for request in files.requests] == ["/moved.csv"]


def test_a_redirect_within_allowed_hosts_is_followed(
    tmp_path: Path, files: FileServer, bills: Bills
) -> None:
    files.redirects["/latest.csv"] = f"/bills/{MERCHANT}/20261120.csv"

    [stored] = fetch_bills(settings_for(tmp_path, files.url + "/latest.csv"), "wechat", DAY)

    assert stored.path.read_bytes() == bills.wechat
    assert stored.provenance.source == f"{files.url}/bills/{MERCHANT}/20261120.csv"


def test_a_404_is_a_bill_not_ready(tmp_path: Path, files: FileServer) -> None:
    url = files.url + "/bills/{merchant}/{date:%Y%m%d}-v2.csv"

    with pytest.raises(BillNotReadyError, match="HTTP 404"):
        fetch_bills(settings_for(tmp_path, url), "wechat", DAY)
