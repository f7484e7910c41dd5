"""Match engines: the one match definition, compiled for each engine."""
