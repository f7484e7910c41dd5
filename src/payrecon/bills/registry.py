"""Which parser reads which channel's bills."""

from __future__ import annotations

import importlib
from pathlib import Path

from payrecon.bills.base import BillParser, ProgressCallback
from payrecon.config import Settings
from payrecon.errors import ConfigError

BUILT_IN = ("wechat", "alipay", "unionpay", "stripe", "paypal", "adyen")
# Formats imported only when used: channel -> (module, parser class).
_LAZY = {
    "unionpay": ("payrecon.bills.unionpay", "UnionpayBillParser"),
    "stripe": ("payrecon.bills.stripe", "StripeBillParser"),
    "paypal": ("payrecon.bills.paypal", "PaypalBillParser"),
    "adyen": ("payrecon.bills.adyen", "AdyenBillParser"),
}


def known_channels(settings: Settings) -> list[str]:
    return [*BUILT_IN, *sorted(settings.channels)]


def bill_parser(
    channel: str, path: Path, settings: Settings, on_progress: ProgressCallback | None = None
) -> BillParser:
    """The parser for one bill file of ``channel`` (built-in or configured as CSV)."""
    if channel in settings.channels:
        from payrecon.bills.csv_generic import CsvBillParser

        return CsvBillParser(
            path, settings.channels[channel], channel=channel, on_progress=on_progress
        )
    if channel == "wechat":
        from payrecon.bills.wechat import WechatBillParser

        return WechatBillParser(path, on_progress=on_progress, timezone=settings.match.timezone)
    if channel == "alipay":
        from payrecon.bills.alipay import AlipayBillParser

        return AlipayBillParser(path, on_progress=on_progress, timezone=settings.match.timezone)
    if channel in _LAZY:
        module, name = _LAZY[channel]
        parser: type[BillParser] = getattr(importlib.import_module(module), name)
        return parser(path, on_progress=on_progress, timezone=settings.match.timezone)
    raise ConfigError(
        f"unknown channel {channel!r}; known: {', '.join(known_channels(settings))}"
        " (configure others under [channels.<name>] in payrecon.toml)"
    )
