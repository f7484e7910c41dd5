"""Settings: one frozen, validated object from ``payrecon.toml`` and ``PAYRECON_*`` env vars.

Nothing is read at import time: call :func:`load_settings` and pass the result into the
factories that need it. Environment variables override the file, with ``__`` between
nested names (``PAYRECON_ENGINE__MEMORY_LIMIT=256MB``).
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from payrecon.core.rules import DEFAULT_SUCCESS, MatchRules, check_timezone
from payrecon.core.schema import Status
from payrecon.errors import ConfigError

DEFAULT_CONFIG_FILE = "payrecon.toml"
CANONICAL_STATUSES = frozenset(status.value for status in Status)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EngineSettings(_Frozen):
    name: Literal["duckdb", "spark"] = "duckdb"
    # DuckDB spills to temp_directory beyond this; bounds the run's memory.
    memory_limit: str = "448MB"
    threads: int | None = None
    # The run's work folder; on a Spark cluster, a path every node sees (a shared mount).
    temp_directory: Path | None = None
    # Spark: local[*] when unset, a cluster URL (spark://, yarn, k8s://) or sc:// (Connect).
    spark_master: str | None = None
    # Spark settings (spark.executor.memory = "4g", …), like spark-submit --conf.
    spark_conf: dict[str, str] = Field(default_factory=dict)


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


class ExecutorSettings(_Frozen):
    """How approved actions reach the platform (see ``payrecon.cases.executor``).

    ``none`` records approved money-moving actions but cannot carry them out: they wait
    until an executor is configured and ``payrecon cases execute`` runs.
    """

    kind: Literal["none", "webhook", "callable"] = "none"
    url: str | None = None
    secret: str | None = None  # HMAC key; prefer PAYRECON_CASES__EXECUTOR__SECRET
    target: str | None = None  # "package.module:function" for kind = "callable"
    timeout_seconds: float = Field(10.0, gt=0)
    max_attempts: int = Field(5, ge=1)


class RuleWhen(_Frozen):
    """Conditions of an automatic rule; every condition given must hold."""

    outcome: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    ledger_status: tuple[str, ...] = ()
    channel_status: tuple[str, ...] = ()
    max_amount: int | None = Field(None, ge=0, description="minor units at stake, at most")


class AutoRuleSettings(_Frozen):
    """``[[cases.rules]]``: when a new case matches ``when``, propose ``propose``."""

    name: str = Field(min_length=1)
    when: RuleWhen = RuleWhen()
    propose: str
    reason: str | None = None


class CasesSettings(_Frozen):
    """The case store (差错处理). Embedded default: ``<home>/cases.sqlite``."""

    enabled: bool = True
    url: str | None = None  # SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db
    # Severity floors in minor units (at least this much at stake) and SLA hours.
    severity_floors: dict[str, int] = Field(
        default_factory=lambda: {"low": 0, "medium": 10_000, "high": 100_000, "critical": 1_000_000}
    )
    sla_hours: dict[str, int] = Field(
        default_factory=lambda: {"low": 72, "medium": 48, "high": 24, "critical": 4}
    )
    require_approval: tuple[str, ...] = ("supplement_order", "refund", "adjust")
    write_off_limit: int = Field(0, ge=0, description="write-offs above this need approval")
    park_days: int = Field(3, ge=1, description="default days a parked (挂账) case waits")
    executor: ExecutorSettings = ExecutorSettings()
    rules: tuple[AutoRuleSettings, ...] = ()


class _FetchSource(_Frozen):
    """What every ``[fetch.channels.<channel>.<merchant>]`` source shares.

    A secret ``x`` is given as ``x_file`` (a file holding it, e.g. a PEM) or ``x_env``
    (the environment variable holding it), never inline in the file.
    """

    secrets: ClassVar[tuple[str, ...]] = ()
    timeout_seconds: float | None = Field(None, gt=0, description="default: fetch.timeout")

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> Self:
        for name in self.secrets:
            given = [f"{name}_{how}" for how in ("file", "env") if getattr(self, f"{name}_{how}")]
            if len(given) != 1:
                raise ValueError(f"give exactly one of {name}_file or {name}_env")
        return self


class WechatV3Source(_FetchSource):
    """WeChat Pay API v3 ``tradebill`` / ``fundflowbill`` (RSA-SHA256 signed requests)."""

    secrets: ClassVar[tuple[str, ...]] = ("private_key",)
    kind: Literal["wechat_v3"]
    mchid: str | None = None  # default: the merchant's name in the config
    serial_no: str = Field(min_length=1, description="merchant API certificate serial")
    private_key_file: Path | None = None  # apiclient_key.pem
    private_key_env: str | None = None
    # WeChat Pay's public key (or platform certificate): answers are verified when given.
    platform_public_key_file: Path | None = None
    bill_types: tuple[
        Literal["ALL", "SUCCESS", "REFUND", "ALL_SPECIAL", "SUC_SPECIAL", "REF_SPECIAL"], ...
    ] = ("ALL",)
    fundflow_accounts: tuple[Literal["BASIC", "OPERATION", "FEES"], ...] = ()
    base_url: str = "https://api.mch.weixin.qq.com"


class WechatV2Source(_FetchSource):
    """WeChat Pay API v2 ``/pay/downloadbill`` (MD5 or HMAC-SHA256 signed XML)."""

    secrets: ClassVar[tuple[str, ...]] = ("api_key",)
    kind: Literal["wechat_v2"]
    appid: str = Field(min_length=1)
    mch_id: str | None = None  # default: the merchant's name in the config
    api_key_file: Path | None = None  # the API key (APIv2 密钥)
    api_key_env: str | None = None
    sign_type: Literal["MD5", "HMAC-SHA256"] = "MD5"
    bill_types: tuple[Literal["ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND"], ...] = ("ALL",)
    gzip: bool = True
    base_url: str = "https://api.mch.weixin.qq.com"


class AlipaySource(_FetchSource):
    """Alipay ``alipay.data.dataservice.bill.downloadurl.query`` (RSA2), then the zip."""

    secrets: ClassVar[tuple[str, ...]] = ("private_key", "alipay_public_key")
    kind: Literal["alipay"]
    app_id: str = Field(min_length=1)
    private_key_file: Path | None = None  # the app's private key (PEM or bare base64)
    private_key_env: str | None = None
    alipay_public_key_file: Path | None = None  # verifies Alipay's answers
    alipay_public_key_env: str | None = None
    bill_types: tuple[Literal["trade", "signcustomer"], ...] = ("trade",)
    gateway: str = "https://openapi.alipay.com/gateway.do"


class SftpSource(_FetchSource):
    """Files on an SFTP server (asyncssh); ``path`` may hold placeholders and a glob."""

    kind: Literal["sftp"]
    host: str = Field(min_length=1)
    port: int = Field(22, gt=0, lt=65536)
    username: str = Field(min_length=1)
    client_key_file: Path | None = None  # private key for key authentication
    password_env: str | None = None
    # Host key checking: a known_hosts file (default ~/.ssh/known_hosts); turning it off
    # must be said explicitly.
    known_hosts: Path | None = None
    check_host_key: bool = True
    path: str = Field(min_length=1, description="e.g. /out/{merchant}/ZM_{date:%Y%m%d}*.txt")


class HttpSource(_FetchSource):
    """A file at an HTTP(S) URL; the URL and every redirect must stay on allowed hosts."""

    kind: Literal["http"]
    url: str = Field(min_length=1, description="e.g. https://h/{merchant}/{date:%Y%m%d}.csv")
    allowed_hosts: tuple[str, ...] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)  # header -> env var (tokens)


class LocalSource(_FetchSource):
    """Files dropped into a folder (banks); ``pattern`` is a glob with placeholders."""

    kind: Literal["local"]
    folder: Path
    pattern: str = Field(min_length=1, description="e.g. {merchant}/ZM_{date:%Y%m%d}*.txt")


FetchSource = Annotated[
    WechatV3Source | WechatV2Source | AlipaySource | SftpSource | HttpSource | LocalSource,
    Field(discriminator="kind"),
]


class FetchSettings(_Frozen):
    """``[fetch]``: where each channel's bills come from, per merchant (see docs/fetch.md)."""

    deadline_seconds: int = Field(0, ge=0, description="retry a bill not ready this long")
    retry_initial_seconds: float = Field(60.0, gt=0)
    retry_max_seconds: float = Field(900.0, ge=0)
    timeout_seconds: float = Field(60.0, gt=0)
    # channel -> merchant -> source
    channels: dict[str, dict[str, FetchSource]] = Field(default_factory=dict)


class ScheduledChannel(_Frozen):
    """``[schedule.channels.<channel>]``: when and how a channel's day is reconciled.

    ``ledger`` and ``out`` may use ``{channel}``, ``{merchant}`` (``all`` for the whole
    channel) and ``{date}`` / ``{date:FORMAT}``; a relative ``out`` is under ``home``.
    """

    cron: str = Field(min_length=1, description="crontab: minute hour day month weekday")
    ledger: str = Field(min_length=1, description="ledger file or database URL")
    # Merchants whose bills are fetched and reconciled together (default: every merchant
    # under [fetch.channels.<channel>]).
    merchants: tuple[str, ...] = ()
    out: str = "daily/{channel}/{merchant}/{date}"
    deadline_seconds: int | None = Field(None, ge=0, description="default: fetch.deadline")
    enabled: bool = True


class ScheduleSettings(_Frozen):
    """``[schedule]``: the daily jobs of ``payrecon scheduler`` (see docs/scheduler.md)."""

    timezone: str = "Asia/Shanghai"  # cron times and "yesterday" are in this zone
    url: str | None = None  # job-run database; default: the case store's (cases_url)
    lease_seconds: int = Field(900, ge=10, description="a crashed job's lock expires after")
    misfire_grace_seconds: int = Field(3600, ge=1)
    channels: dict[str, ScheduledChannel] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value, "schedule.timezone")


class WebhookNotifySettings(_Frozen):
    url: str = Field(min_length=1)
    secret_env: str | None = None  # env var holding the HMAC key; unsigned without it
    timeout_seconds: float = Field(10.0, gt=0)
    max_attempts: int = Field(4, ge=1)
    retry_initial_seconds: float = Field(2.0, ge=0)


class SmtpNotifySettings(_Frozen):
    host: str = Field(min_length=1)
    port: int = Field(587, gt=0, lt=65536)
    sender: str = Field(min_length=3, alias="from")
    to: tuple[str, ...] = Field(min_length=1)
    starttls: bool = True
    user: str | None = None
    password_env: str | None = None  # env var holding the SMTP password
    timeout_seconds: float = Field(30.0, gt=0)


class NotifySettings(_Frozen):
    """``[notify]``: where day summaries and alerts go (both, either or none)."""

    webhook: WebhookNotifySettings | None = None
    smtp: SmtpNotifySettings | None = None
    summaries: bool = True  # False: only alerts (failed jobs, bills missing at deadline)


DEV_SECRET_KEY = "payrecon-development-secret-do-not-use-in-production"


class WebSettings(_Frozen):
    """``[web]``: the back-office (``payrecon serve``). Secrets refuse their defaults
    outside development: set ``PAYRECON_WEB__SECRET_KEY`` (32+ characters) there."""

    environment: Literal["development", "production"] = "development"
    secret_key: str = DEV_SECRET_KEY  # signs session cookies
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    # "auto": Secure cookies when the request came over HTTPS (or X-Forwarded-Proto says so).
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    login_attempts: int = Field(5, ge=1, description="failed logins per window per name/IP")
    login_window_seconds: int = Field(300, ge=1)
    trust_forwarded_proto: bool = False
    workers: int = Field(1, ge=1, le=64, description="`payrecon serve` worker processes")

    @model_validator(mode="after")
    def _no_default_secret_outside_development(self) -> Self:
        if self.environment != "development":
            if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
                raise ValueError("web.secret_key must be set (32+ characters) outside development")
            if self.secure_cookies == "never":
                raise ValueError("web.secure_cookies = 'never' is for development only")
        return self


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
    cases: CasesSettings = CasesSettings()
    fetch: FetchSettings = FetchSettings()
    web: WebSettings = WebSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    notify: NotifySettings = NotifySettings()

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

    @property
    def cases_url(self) -> str:
        """The case store's SQLAlchemy URL (the embedded SQLite file by default)."""
        return self.cases.url or f"sqlite:///{(self.home / 'cases.sqlite').as_posix()}"


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
