"""Ledger sources: the platform's own records (databases, Parquet, CSV) as canonical batches."""
