"""One exception tree for payrecon.

Every error the product raises on purpose derives from :class:`PayreconError`; each
class also inherits the builtin that fits, so ``except ValueError`` keeps working for
callers that do not know payrecon. The CLI maps this tree to exit codes in one place
(``payrecon.cli``); the HTTP API will do the same in its one handler.

    PayreconError
     ├── ConfigError (ValueError)            bad or missing configuration       -> exit 2
     ├── InputError (ValueError)             bad input; names file, line, field -> exit 2
     │    ├── MoneyError                      text that is not an exact amount
     │    ├── BillFormatError                 a bill that cannot be read as its channel's format
     │    │    ├── ChannelErrorResponse       the channel sent an error body instead of a bill
     │    │    ├── BillTruncatedError         the bill's summary (footer) is missing
     │    │    └── BillFooterMismatch         the rows do not add up to the bill's own summary
     │    ├── BillDateError                   a bill row dated outside the run's accounting day
     │    ├── DuplicateBillError              the same bill file given twice
     │    └── LedgerSourceError               the ledger cannot be read at all
     ├── DependencyError (ImportError)        an optional extra is not installed -> exit 2
     └── RunError (RuntimeError)              a run could not complete            -> exit 2
          └── InvariantError                  a record was lost or counted twice (a bug)
"""

from __future__ import annotations

from dataclasses import dataclass


class PayreconError(Exception):
    """Root of every error payrecon raises on purpose."""


class ConfigError(ValueError, PayreconError):
    """The configuration is missing, malformed or contradictory."""


@dataclass(frozen=True)
class Location:
    """Where a bad value sits: file (or table), 1-based line (or key) and field."""

    source: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = [self.source]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)


class InputError(ValueError, PayreconError):
    """Input that cannot be used. The message names the file, line and field."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.reason = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class MoneyError(InputError):
    """Text that is not an exact amount in the expected unit."""


class BillFormatError(InputError):
    """A bill file that cannot be read as its channel's format."""


class ChannelErrorResponse(BillFormatError):
    """The channel returned an error body (e.g. WeChat ``No Bill Exist``) instead of a bill."""


class BillTruncatedError(BillFormatError):
    """The bill ends without its summary section, so its totals cannot be proven."""


class BillFooterMismatch(BillFormatError):
    """The detail rows do not add up to the totals the bill states about itself."""


class BillDateError(InputError):
    """A bill row lies outside the accounting day the run was asked to reconcile."""


class DuplicateBillError(InputError):
    """The same bill content was given twice to one run."""


class LedgerSourceError(InputError):
    """The ledger source cannot be opened or queried at all."""


class DependencyError(ImportError, PayreconError):
    """An optional extra is needed; the message carries the install hint."""


class RunError(RuntimeError, PayreconError):
    """A reconciliation run could not complete."""


class InvariantError(RunError):
    """An accounting invariant failed: a record was lost or counted twice."""


def require(module: str, extra: str) -> None:
    """Fail with an install hint when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DependencyError(
            f"{module} is not installed; install it with: pip install 'payrecon[{extra}]'"
        )
