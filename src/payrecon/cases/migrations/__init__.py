"""Alembic migrations of the case store (run by ``payrecon db upgrade``)."""
