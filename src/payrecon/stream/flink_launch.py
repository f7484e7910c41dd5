"""``payrecon stream --runtime flink``: run the Flink job in a local mini-cluster.

The main environment never imports PyFlink. It writes a :class:`FlinkJobSpec` as JSON,
starts ``.venv-flink/bin/python -m payrecon.stream.flink_job --spec FILE`` and waits.

* File inputs (bounded): the job writes its outputs and dead letters as JSON lines into
  a temporary folder; when it has finished they go to every sink asked for (stdout,
  ``jsonl:``, ``webhook:``, the dead-letter file), through the same sink classes as the
  local runtime. ``kafka://`` sinks are written by Flink itself.
* Kafka inputs (unbounded; ``--flink-jar`` with the Kafka connector): the job never ends,
  so only ``kafka://`` sinks are possible; stop it with Ctrl-C.

``--follow``, ``--checkpoint``, stdin and TCP belong to the local runtime: on Flink,
state and source offsets are checkpointed by Flink itself (docs/deploy-flink.md).
The Python of ``.venv-flink`` is looked up in ``$PAYRECON_FLINK_PYTHON``, then in
``./.venv-flink`` and in the checkout payrecon was installed from (editable install).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import payrecon
from payrecon.core.stream import StreamOutput
from payrecon.errors import ConfigError, DependencyError, InputError, RunError
from payrecon.stream.events import DeadLetter
from payrecon.stream.flink_spec import (
    FileInput,
    FlinkJobSpec,
    FlinkPipeline,
    is_bounded,
    parse_source,
)
from payrecon.stream.flink_state import dead_letter_from_json, output_from_json
from payrecon.stream.launch import StreamRequest
from payrecon.stream.sinks import DeadLetterSink, Sink
from payrecon.stream.specs import open_file_sink, open_sink

FLINK_PYTHON_VAR = "PAYRECON_FLINK_PYTHON"
FLINK_VENV = ".venv-flink"
SETUP_HINT = (
    "create it with `make flink-env` in the payrecon checkout, or set"
    f" {FLINK_PYTHON_VAR} to a Python that has apache-flink 2.3.0 and payrecon"
)
UNBOUNDED_CHECKPOINT_MS = 10_000


def project_root() -> Path:
    """The checkout payrecon runs from (meaningful for an editable install)."""
    return Path(payrecon.__file__).resolve().parents[2]


def flink_python() -> Path:
    """The interpreter of the Flink environment; a DependencyError with the hint if none."""
    explicit = os.environ.get(FLINK_PYTHON_VAR)
    if explicit:
        candidates = [Path(explicit)]
    else:
        candidates = [Path.cwd() / FLINK_VENV, project_root() / FLINK_VENV]
        candidates = [venv / "bin" / "python" for venv in dict.fromkeys(candidates)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.absolute()  # not resolve(): the venv's symlink is the venv
    looked = ", ".join(str(c) for c in candidates)
    raise DependencyError(
        f"the Flink runtime needs its own environment ({FLINK_VENV}), not found at"
        f" {looked}: {SETUP_HINT}"
    )


def run_flink_job(
    spec: FlinkJobSpec, workdir: Path, *, python: Path | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run ``spec`` with the Flink environment's Python; the job's summary (net runtime)."""
    python = python or flink_python()
    spec_path = workdir / "flink-job.json"
    spec_path.write_text(json.dumps(spec.to_json()), encoding="utf-8")
    env = dict(os.environ)
    env["PATH"] = str(python.parent) + os.pathsep + env.get("PATH", "")
    command = [str(python), "-m", "payrecon.stream.flink_job", "--spec", str(spec_path)]
    log_path = workdir / "flink-job.log"  # a file: an unbounded job's log may grow large
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    if done.returncode != 0:
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
        if done.returncode == 2 and log_text.startswith("error: "):
            raise ConfigError(log_text.removeprefix("error: ").strip())
        raise RunError(f"the Flink job failed (exit {done.returncode}): {_reason(log_text)}")
    lines = done.stdout.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def _reason(stderr: str) -> str:
    """The most telling line of a failed job's stderr: the deepest cause, else the last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("Caused by:")]
    return (causes or lines or ["no output"])[-1]


def part_lines(folder: Path) -> Iterator[str]:
    """The lines of every finished part file under ``folder``, file by file, in name order."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):  # in-progress files are hidden
            with path.open(encoding="utf-8") as file:
                yield from (line.rstrip("\n") for line in file if line.strip())


@dataclass
class FlinkResult:
    """What a Flink run emitted."""

    outputs: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    net_runtime_ms: int | None = None

    @property
    def clean(self) -> bool:
        """True when there was no alert and no dead letter."""
        alerts = sum(n for kind, n in self.outputs.items() if kind != "matched")
        return alerts == 0 and self.dead_letters == 0

    def summary(self) -> str:
        """One line for the terminal."""
        outputs = ", ".join(f"{kind} {n}" for kind, n in sorted(self.outputs.items()))
        ran = "" if self.net_runtime_ms is None else f" in {self.net_runtime_ms / 1000:.1f} s"
        return (
            f"Flink job ran{ran} (local mini-cluster); {self.dead_letters} dead letters;"
            f" outputs: {outputs or 'none'}"
        )


def run_stream_on_flink(
    request: StreamRequest,
    *,
    stdout: TextIO,
    jars: Sequence[Path] = (),
    python: Path | None = None,
) -> FlinkResult:
    """Run ``payrecon stream`` on a local Flink mini-cluster (see the module docstring)."""
    _refuse_local_only(request)
    with tempfile.TemporaryDirectory(prefix="payrecon-flink-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        pipeline = _pipeline(request, work)
        if pipeline.uses_kafka and not jars:
            raise ConfigError("Kafka on the Flink runtime needs --flink-jar CONNECTOR.jar")
        python = python or flink_python()
        relayed = [spec for spec in dict.fromkeys(request.sinks) if not _on_flink(spec)]
        sinks: list[Sink[StreamOutput]] = [
            stack.enter_context(closing(_open(request, spec, stdout))) for spec in relayed
        ]
        dead: Sink[DeadLetter] | None = None
        if request.dead_letter is not None:
            dead = stack.enter_context(closing(open_file_sink(DeadLetterSink, request.dead_letter)))
        spec = FlinkJobSpec(
            pipelines=(pipeline,),
            job_name="payrecon-stream (local)",
            parallelism=1,
            checkpoint_interval_ms=None if pipeline.bounded else UNBOUNDED_CHECKPOINT_MS,
            jars=tuple(str(jar) for jar in jars),
            python_executable=str(python),
        )
        summary = run_flink_job(spec, work, python=python)
        result = FlinkResult(net_runtime_ms=summary.get("net_runtime_ms"))
        _relay(work, sinks, dead, result)
        return result


def _refuse_local_only(request: StreamRequest) -> None:
    if request.follow:
        raise ConfigError("--follow is for the local runtime; on Flink read Kafka instead")
    if request.checkpoint is not None:
        raise ConfigError(
            "--checkpoint is for the local runtime; Flink checkpoints its own state"
            " (docs/deploy-flink.md)"
        )
    for spec in (request.pay, request.receipt):
        target = parse_source(spec)
        path = target.path if isinstance(target, FileInput) else "kafka://"
        if "://" not in path and not Path(path).is_file():
            raise InputError(f"cannot read {path}: no such file")


def _on_flink(spec: str) -> bool:
    return spec.startswith("kafka://")


def _pipeline(request: StreamRequest, work: Path) -> FlinkPipeline:
    flink_sinks = [spec for spec in dict.fromkeys(request.sinks) if _on_flink(spec)]
    bounded = is_bounded(request.pay, request.receipt)
    if not bounded and len(flink_sinks) < len(request.sinks):
        raise ConfigError(
            "with Kafka inputs the Flink job never ends: give only kafka:// sinks (and --quiet)"
        )
    if not bounded and request.dead_letter is not None:
        raise ConfigError("with Kafka inputs on Flink, --dead-letter is not available")
    return FlinkPipeline(
        pay=request.pay,
        receipt=request.receipt,
        sinks=(*flink_sinks, *([f"dir:{work / 'outputs'}"] if bounded else [])),
        # Dead letters are always collected from a bounded run: they decide the exit code.
        dead_letters=f"dir:{work / 'dead-letters'}" if bounded else None,
        config=request.config,
        fmt=request.fmt,
        kafka_options=request.kafka_options,
    )


def _open(request: StreamRequest, spec: str, stdout: TextIO) -> Sink[StreamOutput]:
    return open_sink(spec, kafka_options=request.kafka_options, stdout=stdout, tz=request.timezone)


def _relay(
    work: Path, sinks: list[Sink[StreamOutput]], dead: Sink[DeadLetter] | None, result: FlinkResult
) -> None:
    for line in part_lines(work / "outputs"):
        output = output_from_json(line)
        result.outputs[output.type] += 1
        for sink in sinks:
            sink.add(output)
    for line in part_lines(work / "dead-letters"):
        result.dead_letters += 1
        if dead is not None:
            dead.add(dead_letter_from_json(line))
    for sink in sinks:
        sink.flush()
    if dead is not None:
        dead.flush()
