"""Streaming runtime around the pure matcher in :mod:`payrecon.core.stream`.

    events      decode pay / receipt lines (JSON or CSV) into events or dead letters
    sources     the Source interface; files (bounded, followed), stdin
    tcp         TCP client source (``nc -lk 8888``)
    kafka       Kafka source (every partition, manual commit) and sink (confluent-kafka)
    sinks       the Sink interface; stdout, JSON lines, dead letters
    webhook     HTTP webhook sink (httpx)
    checkpoint  SQLite checkpoints: matcher state + source positions + counts
    runtime     the loop: poll, match, emit, flush, checkpoint; run_bounded
    signals     stop between rounds on SIGINT / SIGTERM
    specs       SOURCE / SINK texts of the command line -> objects
    launch      build and run a job for ``payrecon stream``
    backoff     retry delays for reconnects and webhooks

Heavy or optional clients (confluent-kafka, httpx) are imported only by the modules that
use them, and those only when such a source or sink is asked for.
"""
