"""``payrecon users add --password-stdin`` and ``users passwd``: argon2 hashes in the store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from payrecon.cases.service import BackOffice
from payrecon.config import load_settings
from payrecon.errors import PermissionDeniedError
from payrecon.service.cases import case_service
from tests.unit.test_cli import Cli, cli, home  # noqa: F401


def _authenticate(name: str, password: str) -> str:
    service = case_service(load_settings())
    try:
        return BackOffice(service).authenticate(name, password).name
    finally:
        service.store.close()


def test_passwords_are_set_from_stdin(
    cli: Cli,  # noqa: F811
    home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert cli("users", "add", "ann", "--role", "admin", "--password-stdin").code == 0
    assert _authenticate("ann", "first-password") == "ann"
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    assert cli("users", "passwd", "ann", "--password-stdin").code == 0
    with pytest.raises(PermissionDeniedError):
        _authenticate("ann", "first-password")
    assert _authenticate("ann", "second-password") == "ann"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    refused = cli("users", "passwd", "ann", "--password-stdin")
    assert refused.code == 2 and "at least 8" in refused.err
