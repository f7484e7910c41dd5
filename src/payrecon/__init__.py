"""payrecon: payment reconciliation (对账) of channel bills against the internal ledger."""

__version__ = "0.1.0"
