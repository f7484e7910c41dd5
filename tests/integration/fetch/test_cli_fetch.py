"""``payrecon fetch`` end to end against the WeChat Pay v3 server: store, versions, exits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from payrecon.cli import main
from payrecon.config import load_settings
from payrecon.fetch.run import bill_store
from tests.integration.fetch.conftest import (
    DAY,
    WECHAT_MERCHANT,
    Bills,
    Keys,
    parsed_rows,
    pem_private,
    pem_public,
)
from tests.integration.fetch.servers import WechatV3Api

SERIAL = "3775B6A45ACD588826D15E583A95F5DD********"


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


@pytest.fixture
def config(tmp_path: Path, api: WechatV3Api, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Path:
    """payrecon.toml with the merchant key in an environment variable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEST_WECHAT_KEY", pem_private(keys.merchant).decode())
    (tmp_path / "wechatpay_pub.pem").write_bytes(pem_public(keys.platform.public_key()))
    path = tmp_path / "payrecon.toml"
    path.write_text(
        f"""
home = "{tmp_path / "home"}"

[fetch.channels.wechat.{WECHAT_MERCHANT}]
kind = "wechat_v3"
serial_no = "{SERIAL}"
private_key_env = "TEST_WECHAT_KEY"
platform_public_key_file = "wechatpay_pub.pem"
fundflow_accounts = ["BASIC"]
base_url = "{api.url}"
""",
        encoding="utf-8",
    )
    return path


def fetch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["fetch", "--channel", "wechat", "--date", DAY.isoformat(), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(out: str) -> dict[str, list[str]]:
    """stdout lines by file: path -> [sha256, status]."""
    rows = [line.split("\t") for line in out.splitlines()]
    return {path: rest for path, *rest in rows}


def test_fetching_twice_is_a_no_op_and_a_republished_bill_is_a_new_version(
    config: Path, api: WechatV3Api, bills: Bills, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = fetch(capsys)
    assert (code, err) == (0, "")
    first = lines(out)
    assert [status for _, status in first.values()] == ["new", "new"]
    assert all(Path(path).is_file() for path in first)

    code, out, _ = fetch(capsys)
    assert code == 0
    assert lines(out) == {path: [sha, "unchanged"] for path, (sha, _) in first.items()}

    api.bills[(DAY, "ALL")] = bills.wechat_other  # WeChat re-publishes a corrected bill
    code, out, _ = fetch(capsys, "--merchant", WECHAT_MERCHANT, "--json")
    assert code == 0
    by_type = {row["bill_type"]: row for row in json.loads(out)["bills"]}
    changed, fundflow = by_type["ALL"], by_type["fundflow-BASIC"]
    assert changed["changed"] is True and changed["version"] == 2
    assert changed["previous_sha256"] == hashlib.sha256(bills.wechat).hexdigest()
    assert changed["sha256"] == hashlib.sha256(bills.wechat_other).hexdigest()
    assert fundflow["status"] == "unchanged"

    store = bill_store(load_settings(config))
    versions = store.versions("wechat", WECHAT_MERCHANT, DAY, "ALL")
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].path.read_bytes() == bills.wechat  # the first version is kept
    assert parsed_rows("wechat", versions[1].path) > 0


def test_a_bill_not_published_at_the_deadline_exits_2_with_a_clear_message(
    config: Path, api: WechatV3Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.published = lambda day: False

    code, out, err = fetch(capsys, "--deadline", "0s")

    assert (code, out) == (2, "")
    message = " ".join(err.split())
    assert f"wechat merchant {WECHAT_MERCHANT}, 2026-11-20: the bill is still not published" in (
        message
    )
    assert "--deadline 30m" in message and "STATEMENT_CREATING" in message


def test_a_refused_signature_exits_2(
    config: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_WECHAT_KEY", pem_private(keys.stranger).decode())

    code, _, err = fetch(capsys)

    assert code == 2
    assert "HTTP 401" in err or "SIGN_ERROR" in err


def test_an_unknown_channel_exits_2_naming_the_config_section(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["fetch", "--channel", "unionpay", "--date", DAY.isoformat()])

    assert code == 2
    assert "[fetch.channels.unionpay.<merchant>]" in capsys.readouterr().err
