"""The case store's database: engine, sessions and migrations.

Embedded default: a SQLite file under the payrecon home, migrated on first use. Any other
URL (PostgreSQL in production) must be migrated on purpose with ``payrecon db upgrade``;
until then every command refuses to run against it, naming the command to run.

SQLite transactions start with ``BEGIN IMMEDIATE`` so writers queue up instead of failing
half-way; PostgreSQL rows are locked with ``SELECT … FOR UPDATE`` by the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from payrecon.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


class CaseStore:
    """One database holding users, cases, actions and the audit log."""

    def __init__(self, url: str, *, embedded: bool = False) -> None:
        self.url = url
        self.embedded = embedded
        self.engine = _engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"CaseStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    # -- migrations ----------------------------------------------------------------------

    def _config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def head(self) -> str | None:
        """The newest migration this version of payrecon knows."""
        return ScriptDirectory.from_config(self._config()).get_current_head()

    def revision(self) -> str | None:
        """The migration the database is at (``None`` when empty)."""
        try:
            with self.engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except OperationalError as exc:
            raise ConfigError(f"cannot open the case store {self!r}: {exc.orig}") from exc

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply every pending migration; returns (revision before, revision after)."""
        before = self.revision()
        config = self._config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, self.revision()

    def ensure_current(self) -> None:
        """Migrate the embedded store; refuse a configured one that is behind."""
        current, head = self.revision(), self.head()
        if current == head:
            return
        if self.embedded:
            self.upgrade()
            return
        raise ConfigError(
            f"the case store {self!r} is at migration {current or 'none'}, this payrecon"
            f" needs {head}: run `payrecon db upgrade`"
        )


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"cases.url is not a database URL: {url!r}") from exc
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise ConfigError(f"cannot use cases.url {parsed!r}: {exc}") from exc
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_store(url: str, *, embedded: bool) -> CaseStore:
    """A store ready to use: the embedded one is migrated, a configured one must be current."""
    store = CaseStore(url, embedded=embedded)
    try:
        store.ensure_current()
    except BaseException:
        store.close()
        raise
    return store
