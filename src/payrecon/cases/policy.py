"""The ``[cases]`` settings turned into the pure workflow's policy objects, checked once."""

from __future__ import annotations

from dataclasses import dataclass, field

from payrecon.cases.executor import Executor, executor_from_config
from payrecon.config import AutoRuleSettings, CasesSettings
from payrecon.core.cases import AutoRule
from payrecon.core.outcomes import DISCREPANCIES, Outcome
from payrecon.core.workflow import ActionKind, ApprovalPolicy, Severity, SeverityBands
from payrecon.errors import ConfigError


@dataclass(frozen=True)
class CasePolicy:
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    bands: SeverityBands = field(default_factory=SeverityBands)
    park_days: int = 3
    rules: tuple[AutoRule, ...] = ()

    @classmethod
    def from_settings(cls, settings: CasesSettings) -> CasePolicy:
        return cls(
            approval=ApprovalPolicy(
                require_approval=frozenset(
                    _action(name, "cases.require_approval") for name in settings.require_approval
                ),
                write_off_limit=settings.write_off_limit,
            ),
            bands=SeverityBands(
                floors=_by_severity(settings.severity_floors, "cases.severity_floors"),
                sla_hours=_by_severity(settings.sla_hours, "cases.sla_hours"),
            ),
            park_days=settings.park_days,
            rules=tuple(_rule(rule, i) for i, rule in enumerate(settings.rules)),
        )


def _action(name: str, where: str) -> ActionKind:
    try:
        return ActionKind(name)
    except ValueError:
        known = ", ".join(kind.value for kind in ActionKind)
        raise ConfigError(f"{where}: unknown action {name!r} (one of {known})") from None


def _by_severity(values: dict[str, int], where: str) -> dict[Severity, int]:
    try:
        return {Severity(name): value for name, value in values.items()}
    except ValueError:
        known = ", ".join(s.value for s in Severity)
        raise ConfigError(f"{where}: keys must be severities ({known})") from None


def _rule(settings: AutoRuleSettings, index: int) -> AutoRule:
    where = f"cases.rules[{index}] ({settings.name})"
    outcomes = []
    for name in settings.when.outcome:
        try:
            outcome = Outcome(name)
        except ValueError:
            raise ConfigError(f"{where}: unknown outcome {name!r}") from None
        if outcome not in DISCREPANCIES:
            raise ConfigError(f"{where}: {name} opens no case")
        outcomes.append(outcome)
    return AutoRule(
        name=settings.name,
        propose=_action(settings.propose, where),
        outcomes=frozenset(outcomes),
        channels=frozenset(settings.when.channel),
        ledger_statuses=frozenset(settings.when.ledger_status),
        channel_statuses=frozenset(settings.when.channel_status),
        max_amount=settings.when.max_amount,
        reason=settings.reason or f"automatic rule {settings.name}",
    )


def build_executor(settings: CasesSettings) -> Executor | None:
    """The configured executor, or ``None`` when approved actions only wait."""
    spec = settings.executor
    if spec.kind == "none":
        return None
    return executor_from_config(
        spec.kind,
        url=spec.url,
        secret=spec.secret,
        target=spec.target,
        timeout_s=spec.timeout_seconds,
        max_attempts=spec.max_attempts,
    )
