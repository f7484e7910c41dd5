"""The SFTP fetcher against asyncssh's SFTP server with key authentication."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from payrecon.config import Settings
from payrecon.errors import BillNotReadyError, ChannelAuthError
from payrecon.fetch.run import fetch_bills
from tests.integration.fetch.conftest import DAY, Bills, FakeClock, parsed_rows
from tests.integration.fetch.servers import SftpServer

MERCHANT = "bank-a"


@dataclass(frozen=True)
class SshKeys:
    host: asyncssh.SSHKey
    client: asyncssh.SSHKey
    other: asyncssh.SSHKey


@pytest.fixture(scope="module")
def ssh_keys() -> SshKeys:
    return SshKeys(*(asyncssh.generate_private_key("ssh-ed25519") for _ in range(3)))


@pytest.fixture
def server(tmp_path: Path, ssh_keys: SshKeys) -> Iterator[SftpServer]:
    root = tmp_path / "sftp-root"
    (root / "outgoing").mkdir(parents=True)
    with SftpServer(root, ssh_keys.host, ssh_keys.client) as sftp:
        yield sftp


def settings_for(
    tmp_path: Path,
    server: SftpServer,
    client_key: asyncssh.SSHKey,
    host_key_line: str,
    **options: Any,
) -> Settings:
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(client_key.export_private_key())
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(host_key_line + "\n")
    source = {
        "kind": "sftp",
        "host": "127.0.0.1",
        "port": server.port,
        "username": "recon",
        "client_key_file": str(key_file),
        "known_hosts": str(known_hosts),
        "path": "/outgoing/{merchant}_{date:%Y%m%d}_*.csv",
        **options,
    }
    fetch = {"channels": {"wechat": {MERCHANT: source}}}
    return Settings(home=tmp_path / "home", fetch=fetch)


def test_key_auth_and_known_host_fetch_every_matching_file(
    tmp_path: Path, server: SftpServer, ssh_keys: SshKeys, bills: Bills
) -> None:
    (server.root / "outgoing" / "bank-a_20261120_ALL.csv").write_bytes(bills.wechat)
    (server.root / "outgoing" / "bank-a_20261121_ALL.csv").write_bytes(b"another day")
    settings = settings_for(tmp_path, server, ssh_keys.client, server.host_key_line)

    [stored] = fetch_bills(settings, "wechat", DAY)

    assert stored.provenance.bill_type == "bank-a_20261120_ALL.csv"
    assert stored.provenance.source == (
        f"sftp://recon@127.0.0.1:{server.port}/outgoing/bank-a_20261120_ALL.csv"
    )
    assert parsed_rows("wechat", stored.path) == bills.wechat_rows


def test_a_file_not_dropped_yet_is_retried_until_it_appears(
    tmp_path: Path, server: SftpServer, ssh_keys: SshKeys, bills: Bills, clock: FakeClock
) -> None:
    settings = settings_for(tmp_path, server, ssh_keys.client, server.host_key_line)

    def bank_drops_the_file_while_we_wait(seconds: float) -> None:
        clock.sleep(seconds)
        (server.root / "outgoing" / "bank-a_20261120_ALL.csv").write_bytes(bills.wechat)

    [stored] = fetch_bills(
        settings,
        "wechat",
        DAY,
        deadline=timedelta(hours=1),
        sleep=bank_drops_the_file_while_we_wait,
        clock=clock.monotonic,
    )

    assert clock.slept == [60.0]
    assert stored.path.read_bytes() == bills.wechat


def test_no_matching_file_is_not_ready(
    tmp_path: Path, server: SftpServer, ssh_keys: SshKeys
) -> None:
    settings = settings_for(tmp_path, server, ssh_keys.client, server.host_key_line)

    with pytest.raises(BillNotReadyError, match="no such file on the server"):
        fetch_bills(settings, "wechat", DAY)


def test_a_host_key_not_in_known_hosts_is_refused(
    tmp_path: Path, server: SftpServer, ssh_keys: SshKeys
) -> None:
    impostor = f"[127.0.0.1]:{server.port} " + ssh_keys.other.export_public_key().decode()
    settings = settings_for(tmp_path, server, ssh_keys.client, impostor)

    with pytest.raises(ChannelAuthError, match="host key is not in known_hosts"):
        fetch_bills(settings, "wechat", DAY)


def test_host_key_checking_can_be_turned_off_explicitly(
    tmp_path: Path, server: SftpServer, ssh_keys: SshKeys, bills: Bills
) -> None:
    (server.root / "outgoing" / "bank-a_20261120_ALL.csv").write_bytes(bills.wechat)
    impostor = f"[127.0.0.1]:{server.port} " + ssh_keys.other.export_public_key().decode()
    settings = settings_for(tmp_path, server, ssh_keys.client, impostor, check_host_key=False)

    [stored] = fetch_bills(settings, "wechat", DAY)

    assert stored.path.read_bytes() == bills.wechat


def test_an_unknown_client_key_is_refused(
    tmp_path: Path, server: SftpServer, ssh_keys: SshKeys
) -> None:
    settings = settings_for(tmp_path, server, ssh_keys.other, server.host_key_line)

    with pytest.raises(ChannelAuthError, match="permission denied"):
        fetch_bills(settings, "wechat", DAY)
