"""Use cases that tie parsers, ledger sources, engines and the run store together."""
