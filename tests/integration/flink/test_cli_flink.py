"""``payrecon stream --runtime flink`` and the ``flink run -py`` bundle, end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from payrecon.cli import main
from payrecon.stream.flink_launch import FLINK_PYTHON_VAR, part_lines
from payrecon.stream.flink_package import ZIP_NAME, write_flink_job
from tests.integration.flink.conftest import JOB_TIMEOUT_S

PAYS = (
    "1,create,order01,1606549510\n"
    "1,pay,order01,1606549513\n"
    "2,pay,order02,1606549520\n"
    "3,pay,order03,1606549521\n"
    "4,pay,,1606549522\n"  # no order id: a dead letter
    "5,pay,order05,1606549530\n"
)
RECEIPTS = (
    "order03,wechat,1606549519\n"  # before its pay, in time
    "order01,wechat,1606549536\n"  # too late: two alerts
    "order02,alipay,1606549522\n"
    "order04,alipay,1606549525\n"  # no pay
)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_text(PAYS, encoding="utf-8")
    receipt.write_text(RECEIPTS, encoding="utf-8")
    return pay, receipt


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_the_flink_runtime_gives_the_local_runtime_s_outputs(
    flink_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(FLINK_PYTHON_VAR, str(flink_env))
    pay, receipt = files
    ran = {}
    for runtime in ("local", "flink"):
        code = main(
            [
                "stream",
                f"--runtime={runtime}",
                f"--pay={pay}",
                f"--receipt={receipt}",
                f"--jsonl={tmp_path / runtime}.jsonl",
                f"--dead-letter={tmp_path / runtime}-dead.jsonl",
            ]
        )
        ran[runtime] = (code, capsys.readouterr())
    local_code, local = ran["local"]
    flink_code, flink = ran["flink"]
    assert local_code == flink_code == 1  # alerts and a dead letter
    assert sorted(flink.out.splitlines()) == sorted(local.out.splitlines())
    assert len(local.out.splitlines()) == 6
    assert sorted(_lines(tmp_path / "flink.jsonl")) == sorted(_lines(tmp_path / "local.jsonl"))
    assert _lines(tmp_path / "flink-dead.jsonl") == _lines(tmp_path / "local-dead.jsonl")
    assert "1 dead letters" in flink.err and "unmatched_receipt 2" in flink.err


def test_kafka_without_the_connector_jar_is_a_clear_error(
    flink_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(FLINK_PYTHON_VAR, str(flink_env))
    not_the_connector = tmp_path / "empty.jar"
    not_the_connector.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    code = main(
        [
            "stream",
            "--runtime=flink",
            "--pay=kafka://127.0.0.1:9/orders",
            f"--receipt={files[1]}",
            "--sink=kafka://127.0.0.1:9/alerts",
            "--quiet",
            f"--flink-jar={not_the_connector}",
        ]
    )
    assert code == 2
    assert "Kafka connector is not on Flink's class path" in capsys.readouterr().err


def _flink_home(python: Path) -> Path:
    code = "import os, pyflink; print(os.path.dirname(pyflink.__file__))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def test_the_bundle_runs_with_flink_run_py(
    flink_env: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    """What ``payrecon flink-job`` writes, submitted the cluster way (``-t local``)."""
    bundle = tmp_path / "job"
    write_flink_job(bundle)
    out = tmp_path / "alerts"
    env = {**os.environ, "PATH": f"{flink_env.parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(_flink_home(flink_env) / "bin" / "flink"),
        "run",
        "--target=local",
        f"--python={bundle / 'flink_job.py'}",
        f"--pyFiles={bundle / ZIP_NAME}",
        f"--pyExecutable={flink_env}",
        f"--pyClientExecutable={flink_env}",
        f"--pay={files[0]}",
        f"--receipt={files[1]}",
        f"--sink=dir:{out}",
        "--checkpoint-interval=off",
        "--parallelism=1",
    ]
    done = subprocess.run(
        command,
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    types = sorted(json.loads(line)["type"] for line in part_lines(out))
    assert (
        types
        == ["matched", "matched", "unmatched_pay", "unmatched_pay"] + ["unmatched_receipt"] * 2
    )
