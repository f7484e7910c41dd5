"""Pure domain: money, canonical schema, match rules, outcomes. No I/O."""
