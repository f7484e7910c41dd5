"""Migrations and models agree; the embedded store migrates itself, a configured one must
be migrated on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from payrecon.cases.models import Base
from payrecon.cases.store import CaseStore, open_store
from payrecon.errors import ConfigError


def test_migrations_create_exactly_the_models(store: CaseStore) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert store.revision() == store.head()


def test_upgrade_is_idempotent(store: CaseStore) -> None:
    assert store.upgrade() == (store.head(), store.head())


def test_embedded_store_migrates_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'home' / 'cases.sqlite'}"
    with open_store(url, embedded=True) as store:
        assert store.revision() == store.head()
    assert (tmp_path / "home" / "cases.sqlite").is_file()


def test_a_configured_store_behind_its_migrations_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    with pytest.raises(ConfigError, match="payrecon db upgrade"):
        open_store(url, embedded=False)


def test_a_bad_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        CaseStore("not a url")
    with pytest.raises(ConfigError, match="cannot open"):
        CaseStore("postgresql+psycopg://nobody@127.0.0.1:1/none").revision()
