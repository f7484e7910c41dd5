"""Unit tests for discrepancy cases."""
