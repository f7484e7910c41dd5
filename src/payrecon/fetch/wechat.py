"""What WeChat Pay's error answers mean for a fetch (v2 FAIL XML, v3 JSON errors).

The bodies are recognised by :func:`payrecon.bills.wechat.channel_error`, the function
the bill parser uses when such a body is handed to it as a bill. This module only decides
what each answer means here: not published yet (retried), our signature refused, the
channel's own trouble (retried), or a request that can never work, such as
``invalid bill_date``, which stays a :class:`~payrecon.errors.ChannelErrorResponse`.
"""

from __future__ import annotations

from typing import NoReturn

from payrecon.bills.wechat import channel_error
from payrecon.errors import (
    BillNotReadyError,
    ChannelAuthError,
    ChannelErrorResponse,
    ChannelUnavailableError,
    FetchError,
)
from payrecon.fetch.transfer import RETRY_STATUSES, snippet, status_error

# v2: return_msg "No Bill Exist" (error_code 20002); v3: code NO_STATEMENT_EXIST or
# STATEMENT_CREATING (账单生成中).
NOT_READY = ("No Bill Exist", "NO_STATEMENT_EXIST", "STATEMENT_CREATING")
REFUSED = ("SIGN_ERROR", "SIGNERROR", "签名错误")
UNAVAILABLE = ("SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED")


def raise_failure(head: bytes, what: str, status: int | None = None) -> NoReturn:
    """Raise the error a WeChat answer that is not a bill stands for."""
    problem = channel_error(head, what)
    if isinstance(problem, ChannelErrorResponse):
        text = f"{what}: {problem.reason}"
        if _mentions(problem.reason, NOT_READY):
            raise BillNotReadyError(text) from problem
        if status == 401 or _mentions(problem.reason, REFUSED):
            raise ChannelAuthError(f"{text} (check the merchant key and serial_no)") from problem
        if _unavailable(status) or _mentions(problem.reason, UNAVAILABLE):
            raise ChannelUnavailableError(text) from problem
        raise problem
    if status is not None and status != 200:
        raise status_error(status, what, head)
    if problem is not None:
        raise problem
    raise FetchError(f"{what}: an answer that is neither a bill nor an error: {snippet(head)}")


def is_error_body(head: bytes) -> bool:
    """Whether a 200 answer is an error body (XML or JSON) rather than a bill."""
    return head.lstrip()[:1] in (b"<", b"{")


def _mentions(text: str, markers: tuple[str, ...]) -> bool:
    return any(marker in text for marker in markers)


def _unavailable(status: int | None) -> bool:
    return status is not None and (status in RETRY_STATUSES or status >= 500)
