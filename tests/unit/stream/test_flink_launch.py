"""``payrecon stream --runtime flink`` before any Flink runs: the environment and refusals.

The runs themselves are in tests/integration/flink (they need .venv-flink).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from payrecon.cli import main
from payrecon.errors import ConfigError, DependencyError, RunError
from payrecon.stream.flink_launch import (
    FLINK_PYTHON_VAR,
    flink_python,
    part_lines,
    run_flink_job,
)
from payrecon.stream.flink_spec import FlinkJobSpec, FlinkPipeline


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_text("1,pay,order01,1606549513\n", encoding="utf-8")
    receipt.write_text("order01,wechat,1606549515\n", encoding="utf-8")
    return pay, receipt


def test_the_main_environment_has_no_pyflink() -> None:
    assert importlib.util.find_spec("pyflink") is None
    code = (
        "import sys, payrecon.cli, payrecon.stream.flink_launch, payrecon.stream.flink_package;"
        " print([m for m in sys.modules if m.startswith('pyflink')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_missing_flink_environment_names_the_make_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(FLINK_PYTHON_VAR, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(DependencyError, match="make flink-env"):
        flink_python()


def test_the_command_without_the_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(FLINK_PYTHON_VAR, str(tmp_path / "nowhere" / "python"))
    pay, receipt = files
    code = main(["stream", "--runtime", "flink", "--pay", str(pay), "--receipt", str(receipt)])
    assert code == 2
    assert "make flink-env" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--follow"], "--follow is for the local runtime"),
        (["--checkpoint", "{tmp}/c.sqlite"], "--checkpoint is for the local runtime"),
        (["--sink", "kafka://127.0.0.1:9/alerts"], "needs --flink-jar"),
        (["--runtime", "spark"], "is not local or flink"),
    ],
)
def test_what_the_flink_runtime_refuses_exits_2(
    extra: list[str],
    message: str,
    tmp_path: Path,
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pay, receipt = files
    args = ["stream", "--runtime", "flink", "--pay", str(pay), "--receipt", str(receipt)]
    assert main(args + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("pay", "message"),
    [
        ("tcp://127.0.0.1:8888", "reads files or Kafka"),
        ("-", "reads files or Kafka"),
        ("kafka://127.0.0.1:9/orders", "never ends"),
        ("{tmp}/missing.csv", "cannot read"),
    ],
)
def test_sources_the_flink_runtime_refuses_exit_2(
    pay: str,
    message: str,
    tmp_path: Path,
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["stream", "--runtime", "flink", "--receipt", str(files[1])]
    assert main([*args, "--pay", pay.format(tmp=tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_only_finished_part_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "outputs-a-0.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    (tmp_path / ".outputs-b-0.jsonl.inprogress.x").write_text('{"a": 3}\n')
    assert list(part_lines(tmp_path)) == ['{"a": 1}', '{"a": 2}']
    assert list(part_lines(tmp_path / "none")) == []


def _fake_python(tmp_path: Path, script: str) -> Path:
    """A stand-in for the Flink environment's Python that ignores its arguments."""
    path = tmp_path / "bin" / "python"
    path.parent.mkdir()
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def _spec() -> FlinkJobSpec:
    return FlinkJobSpec((FlinkPipeline("p.csv", "r.csv", ("dir:o",)),))


def test_a_failed_job_reports_its_deepest_cause(tmp_path: Path) -> None:
    python = _fake_python(
        tmp_path,
        "echo 'Traceback'\necho 'Caused by: outer' >&2\necho 'Caused by: inner' >&2\nexit 1",
    )
    with pytest.raises(RunError, match=r"failed \(exit 1\): Caused by: inner"):
        run_flink_job(_spec(), tmp_path, python=python)


def test_a_refused_spec_is_a_config_error(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, "echo 'error: no such thing' >&2\nexit 2")
    with pytest.raises(ConfigError, match=r"^no such thing$"):
        run_flink_job(_spec(), tmp_path, python=python)


def test_the_job_summary_is_its_last_stdout_line(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, "echo 'noise'\necho '{\"net_runtime_ms\": 12}'")
    assert run_flink_job(_spec(), tmp_path, python=python) == {"net_runtime_ms": 12}
    written = json.loads((tmp_path / "flink-job.json").read_text())
    assert FlinkJobSpec.from_json(written) == _spec()
