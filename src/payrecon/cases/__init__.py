"""Discrepancy cases: store, workflow service, audit log and action execution."""
