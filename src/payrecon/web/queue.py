"""The case queue's filters, sorting and paging, shared by the page and the API."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from payrecon.cases.service import CaseFilter
from payrecon.core.outcomes import Outcome
from payrecon.core.workflow import CaseState

Sort = Literal["due", "stake", "run_day", "opened", "id"]
MAX_PAGE = 200


class QueueQuery(BaseModel):
    """Filters (all optional), ordering and the page. Amounts are minor units."""

    model_config = ConfigDict(extra="ignore")

    channel: str | None = Field(None, max_length=32)
    outcome: Outcome | None = None
    state: list[CaseState] = Field(default_factory=list)
    assignee: str | None = Field(None, max_length=64)
    date_from: date | None = None
    date_to: date | None = None
    min_stake: int | None = Field(None, ge=0, le=10**15)
    max_stake: int | None = Field(None, ge=0, le=10**15)
    overdue: bool = False
    open_only: bool = True
    sort: Sort = "due"
    desc: bool = False
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(50, ge=1, le=MAX_PAGE)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """An empty form field means "no filter" (HTML forms send every field)."""
        if not isinstance(data, dict):
            return data
        kept = {k: v for k, v in data.items() if v != ""}
        if isinstance(kept.get("state"), list):
            kept["state"] = [s for s in kept["state"] if s != ""]
        return kept

    def filter(self) -> CaseFilter:
        return CaseFilter(
            channel=self.channel or None,
            states=tuple(s.value for s in self.state),
            outcome=self.outcome.value if self.outcome else None,
            assignee=self.assignee or None,
            run_day_from=self.date_from,
            run_day_to=self.date_to,
            min_stake=self.min_stake,
            max_stake=self.max_stake,
            overdue=self.overdue,
            open_only=self.open_only and not self.state,
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page
