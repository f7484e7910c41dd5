"""Streaming runtime: event decoding, sources, sinks, state; the matcher logic is
payrecon.core.stream."""
