"""Turn the command line's SOURCE and SINK texts into sources and sinks.

SOURCE: ``-`` (stdin), ``file:PATH`` or a plain path, ``tcp://HOST:PORT``,
``kafka://BOOTSTRAP/TOPIC?group=G`` (BOOTSTRAP may list several ``host:port``, comma
separated; the group defaults to :data:`DEFAULT_GROUP`).

SINK: ``stdout``, ``jsonl:PATH``, ``kafka://BOOTSTRAP/TOPIC``, ``webhook:URL``, and
``cases`` or ``cases:CHANNEL`` (provisional cases in the configured case store, for the
channel the receipts come from; default ``stream``).

Nothing is opened here except the sink's files and clients; sources are opened by the
runtime, at their checkpointed positions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import tzinfo
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import parse_qs, urlsplit

from payrecon.core.stream import StreamOutput
from payrecon.errors import ConfigError
from payrecon.stream.sinks import JsonLinesSink, Sink, StdoutSink
from payrecon.stream.sources import FileSource, Source, stdin_source

S = TypeVar("S")
DEFAULT_GROUP = "payrecon-stream"
SOURCE_FORMS = "-, file:PATH, PATH, tcp://HOST:PORT or kafka://BOOTSTRAP/TOPIC?group=G"
SINK_FORMS = "stdout, jsonl:PATH, kafka://BOOTSTRAP/TOPIC, webhook:URL or cases[:CHANNEL]"


def open_source(
    spec: str, *, follow: bool, kafka_options: Mapping[str, str], stdin: TextIO
) -> Source:
    """The source ``spec`` names (not yet opened)."""
    if spec == "-":
        return stdin_source(stdin)
    if spec.startswith("tcp://"):
        from payrecon.stream.tcp import TcpSource

        host, port = _host_port(spec)
        return TcpSource(host, port, follow=follow)
    if spec.startswith("kafka://"):
        from payrecon.stream.kafka import KafkaSource

        bootstrap, topic, group = _kafka(spec, allow_group=True)
        return KafkaSource(bootstrap, topic, group, kafka_options)
    if spec.startswith("file:"):
        return FileSource(Path(_file_path(spec)), follow=follow)
    if "://" in spec:
        raise ConfigError(f"unknown source {spec!r}: use {SOURCE_FORMS}")
    return FileSource(Path(spec), follow=follow)


def open_sink(
    spec: str, *, kafka_options: Mapping[str, str], stdout: TextIO, tz: tzinfo
) -> Sink[StreamOutput]:
    """The sink ``spec`` names, ready to take outputs."""
    if spec == "stdout":
        return StdoutSink(stdout, tz)
    if spec.startswith("jsonl:"):
        return open_file_sink(JsonLinesSink, Path(spec.removeprefix("jsonl:")))
    if spec.startswith("kafka://"):
        from payrecon.stream.kafka import KafkaSink

        bootstrap, topic, _ = _kafka(spec, allow_group=False)
        return KafkaSink(bootstrap, topic, kafka_options)
    if spec.startswith("webhook:"):
        from payrecon.stream.webhook import WebhookSink

        return WebhookSink(spec.removeprefix("webhook:"))
    if spec == "cases" or spec.startswith("cases:"):
        from payrecon.config import load_settings
        from payrecon.service.cases import case_service
        from payrecon.stream.case_sink import CaseSink

        channel = spec.removeprefix("cases").removeprefix(":") or "stream"
        settings = load_settings()
        return CaseSink(case_service(settings), channel=channel, timezone=str(tz))
    raise ConfigError(f"unknown sink {spec!r}: use {SINK_FORMS}")


def open_file_sink(make: Callable[[Path], S], path: Path) -> S:
    """A file sink; a path that cannot be written is a configuration error."""
    if not path.name:
        raise ConfigError(f"a file sink needs a file name, not {str(path)!r}")
    try:
        return make(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _file_path(spec: str) -> str:
    rest = spec.removeprefix("file:")
    path = urlsplit(spec).path if rest.startswith("//") else rest
    if not path:
        raise ConfigError(f"source {spec!r} names no file")
    return path


def _host_port(spec: str) -> tuple[str, int]:
    parts = urlsplit(spec)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None or parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"{spec!r} is not tcp://HOST:PORT")
    return host, port


def _kafka(spec: str, *, allow_group: bool) -> tuple[str, str, str]:
    parts = urlsplit(spec)
    topic = parts.path.removeprefix("/")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - ({"group"} if allow_group else set())
    if not parts.netloc or not topic or "/" in topic or unknown or parts.fragment:
        form = "kafka://BOOTSTRAP/TOPIC" + ("?group=G" if allow_group else "")
        raise ConfigError(f"{spec!r} is not {form}")
    groups = query.get("group", [DEFAULT_GROUP])
    if len(groups) != 1 or not groups[0]:
        raise ConfigError(f"{spec!r}: give one non-empty group")
    return parts.netloc, topic, groups[0]
