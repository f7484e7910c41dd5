"""``payrecon flink-job``: the job file and exactly the pure modules it imports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from payrecon.cli import main
from payrecon.errors import ConfigError, InvariantError
from payrecon.stream.flink_package import ZIP_NAME, bundle_modules, write_flink_job

BUNDLE = [
    "payrecon",
    "payrecon.core",
    "payrecon.core.stream",
    "payrecon.errors",
    "payrecon.stream",
    "payrecon.stream.events",
    "payrecon.stream.flink_job",
    "payrecon.stream.flink_spec",
    "payrecon.stream.flink_state",
    "payrecon.stream.sinks",
]
HEAVY = ("duckdb", "pyarrow", "numpy", "pandas", "pydantic", "typer", "sqlalchemy", "httpx")


def test_the_bundle_is_the_job_and_its_pure_modules() -> None:
    assert bundle_modules() == BUNDLE


def test_a_module_needing_a_third_party_package_is_refused() -> None:
    with pytest.raises(InvariantError, match="which a Flink worker lacks"):
        bundle_modules("payrecon.config")


def test_the_bundled_modules_load_nothing_heavy() -> None:
    pure = [module for module in BUNDLE if module != "payrecon.stream.flink_job"]
    code = f"import sys; import {', '.join(pure)}; print(sorted(set(sys.modules) & {set(HEAVY)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_folder_has_the_job_the_zip_and_a_readme(tmp_path: Path) -> None:
    out = tmp_path / "job"
    written = write_flink_job(out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "flink_job.py", ZIP_NAME]
    assert written == [out / "flink_job.py", out / ZIP_NAME, out / "README.md"]
    names = zipfile.ZipFile(out / ZIP_NAME).namelist()
    assert "payrecon/stream/flink_job.py" in names and "payrecon/__init__.py" in names
    assert len(names) == len(BUNDLE)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert f"-py flink_job.py --pyFiles {ZIP_NAME}" in readme
    assert "flink-sql-connector-kafka" in readme


def test_the_zip_alone_provides_the_pure_modules(tmp_path: Path) -> None:
    write_flink_job(tmp_path / "job")
    archive = tmp_path / "job" / ZIP_NAME
    code = (
        f"import sys; sys.path.insert(0, {str(archive)!r});"
        " import payrecon.stream.flink_state as m, payrecon.core.stream as c;"
        " print(m.__file__); print(c.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert all(line.startswith(str(archive)) for line in done.stdout.splitlines())


def test_writing_again_replaces_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "job"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    write_flink_job(out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]  # no staging left behind


def test_a_file_in_the_way_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "job").write_text("x")
    with pytest.raises(ConfigError):
        write_flink_job(tmp_path / "job")


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flink-job", "--out", str(tmp_path / "job")]) == 0
    err = capsys.readouterr().err
    assert "flink_job.py" in err and "README.md" in err
    assert (tmp_path / "job" / ZIP_NAME).is_file()
