"""Settings: one frozen, validated object from ``payrecon.toml`` and ``PAYRECON_*`` env vars.

Nothing is read at import time: call :func:`load_settings` and pass the result into the
factories that need it. Environment variables override the file, with ``__`` between
nested names (``PAYRECON_ENGINE__MEMORY_LIMIT=256MB``).
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from payrecon.core.rules import DEFAULT_SUCCESS, MatchRules
from payrecon.core.schema import Status
from payrecon.errors import ConfigError

DEFAULT_CONFIG_FILE = "payrecon.toml"
CANONICAL_STATUSES = frozenset(status.value for status in Status)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EngineSettings(_Frozen):
    name: Literal["duckdb"] = "duckdb"
    # DuckDB spills to temp_directory beyond this; bounds the run's memory.
    memory_limit: str = "448MB"
    threads: int | None = None
    temp_directory: Path | None = None


class MatchSettings(_Frozen):
    key: tuple[str, ...] = ("channel", "kind", "order_id")
    amount_tolerance: int = Field(0, ge=0, description="minor units")
    fee_tolerance: int = Field(0, ge=0, description="thousandths of a minor unit")
    compare_amount: Literal["amount", "order_amount"] = "amount"
    success_statuses: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {k: tuple(sorted(v)) for k, v in DEFAULT_SUCCESS.items()}
    )
    cross_day_window_seconds: int = Field(600, ge=0, lt=43200)
    carry_days: int = Field(3, ge=0)
    timezone: str = "Asia/Shanghai"

    def rules(self) -> MatchRules:
        return MatchRules(
            key=self.key,
            amount_tolerance=self.amount_tolerance,
            fee_tolerance=self.fee_tolerance,
            compare_amount=self.compare_amount,
            success_statuses={k: frozenset(v) for k, v in self.success_statuses.items()},
            cross_day_window=timedelta(seconds=self.cross_day_window_seconds),
            carry_days=self.carry_days,
            timezone=self.timezone,
        )


def _check_status_map(value: dict[str, str]) -> dict[str, str]:
    wrong = {raw: mapped for raw, mapped in value.items() if mapped not in CANONICAL_STATUSES}
    if wrong:
        raise ValueError(f"status_map values must be one of {sorted(CANONICAL_STATUSES)}: {wrong}")
    return value


class LedgerSettings(_Frozen):
    """How to read the platform's records from a database (files use canonical names).

    ``query`` may use the named parameters ``:date`` (the accounting day), ``:start`` and
    ``:end`` (the day's bounds as timestamps in ``timezone``) and ``:channel``. Without a
    query, ``table`` is read with a range condition on the ``txn_time`` column.
    """

    query: str | None = None
    table: str | None = None
    # canonical name -> the column (or alias) in the query result
    columns: dict[str, str] = Field(default_factory=dict)
    # the platform's own status values -> canonical ones
    status_map: dict[str, str] = Field(default_factory=dict)
    timezone: str = "Asia/Shanghai"
    fetch_size: int = Field(50_000, gt=0)

    _status = field_validator("status_map")(_check_status_map)


class CsvChannelSettings(_Frozen):
    """A channel whose bill is a plain CSV, described by a column mapping."""

    format: Literal["csv"] = "csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    skip_lines: int = Field(0, ge=0, description="lines before the header")
    timezone: str = "Asia/Shanghai"
    time_format: str = "%Y-%m-%d %H:%M:%S"
    amount_unit: Literal["major", "minor"] = "major"
    currency: str = "CNY"
    # canonical name -> header name in the file; order_id, amount, txn_time are required
    columns: dict[str, str]
    status_map: dict[str, str] = Field(default_factory=dict)
    # value of the mapped ``kind`` column -> PAY or REFUND
    kind_map: dict[str, Literal["PAY", "REFUND"]] = Field(default_factory=dict)

    _status = field_validator("status_map")(_check_status_map)

    @field_validator("columns")
    @classmethod
    def _required(cls, value: dict[str, str]) -> dict[str, str]:
        missing = {"order_id", "amount", "txn_time"} - value.keys()
        if missing:
            raise ValueError(f"columns must map {sorted(missing)}")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="PAYRECON_",
        env_nested_delimiter="__",
    )

    home: Path = Path(".payrecon")
    engine: EngineSettings = EngineSettings()
    match: MatchSettings = MatchSettings()
    ledger: LedgerSettings = LedgerSettings()
    channels: dict[str, CsvChannelSettings] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file, which arrives as init kwargs.
        return env_settings, init_settings

    @property
    def temp_directory(self) -> Path:
        return self.engine.temp_directory or self.home / "tmp"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (or ``./payrecon.toml`` when present) and the env."""
    data: dict[str, Any] = {}
    candidate = path or Path(DEFAULT_CONFIG_FILE)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if candidate.is_file():
        try:
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{candidate}: {exc}") from exc
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{candidate}: " if candidate.is_file() else ""
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where}invalid configuration: {details}") from exc
