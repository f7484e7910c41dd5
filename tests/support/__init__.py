"""Test support: fakes of the services payrecon talks to."""
