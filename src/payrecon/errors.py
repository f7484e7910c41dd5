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
     ├── WorkflowError                        a case command the workflow refuses -> exit 2
     │    ├── TransitionError (ValueError)    not allowed in the case's (or action's) state
     │    ├── PermissionDeniedError (PermissionError)  role, or proposer approving own action
     │    └── ConflictError (RuntimeError)    someone else changed the case meanwhile
     ├── NotFoundError (LookupError)          no such case, action or user          -> exit 2
     ├── DependencyError (ImportError)        an optional extra is not installed -> exit 2
     └── RunError (RuntimeError)              a run could not complete            -> exit 2
          ├── InvariantError                  a record was lost or counted twice (a bug)
          └── FetchError                      a bill could not be fetched (payrecon.fetch)
               ├── BillNotReadyError          the channel has not published it yet (retried)
               │    └── BillDeadlineError     still not published when the deadline passed
               ├── ChannelUnavailableError    network error, timeout or 5xx (retried)
               ├── ChannelAuthError (PermissionError)  the channel refused our signature (401)
               ├── BillIntegrityError         hash or response signature does not verify
               └── HostNotAllowedError (PermissionError)  a URL outside the allow-list
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


class WorkflowError(PayreconError):
    """A case command that the workflow refuses."""


class TransitionError(ValueError, WorkflowError):
    """The command is not allowed in the case's (or the action's) current state."""


class PermissionDeniedError(PermissionError, WorkflowError):
    """The actor's role does not allow the command, or it breaks separation of duties."""


class ConflictError(RuntimeError, WorkflowError):
    """The case changed between reading and writing it (retry on the fresh state)."""


class NotFoundError(LookupError, PayreconError):
    """No such case, action or user."""


class DependencyError(ImportError, PayreconError):
    """An optional extra is needed; the message carries the install hint."""


class RunError(RuntimeError, PayreconError):
    """A reconciliation run could not complete."""


class InvariantError(RunError):
    """An accounting invariant failed: a record was lost or counted twice."""


class FetchError(RunError):
    """A bill could not be fetched from its channel, server or folder."""


class BillNotReadyError(FetchError):
    """The bill is not published yet (WeChat ``No Bill Exist``, a 404): try again later."""


class BillDeadlineError(BillNotReadyError):
    """The bill was still not published when the retry deadline passed."""


class ChannelUnavailableError(FetchError):
    """The channel could not be reached or failed on its side (timeout, 5xx): retried."""


class ChannelAuthError(PermissionError, FetchError):
    """The channel refused the request's signature or credentials (HTTP 401, 签名错误)."""


class BillIntegrityError(FetchError):
    """The downloaded bill or the channel's answer fails its hash or signature check."""


class HostNotAllowedError(PermissionError, FetchError):
    """A download URL (or a redirect) points at a host outside the configured allow-list."""


def require(module: str, extra: str) -> None:
    """Fail with an install hint when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DependencyError(
            f"{module} is not installed; install it with: pip install 'payrecon[{extra}]'"
        )
