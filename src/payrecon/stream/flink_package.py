"""``payrecon flink-job --out DIR``: what ``flink run -py`` needs to run the matcher.

The folder gets:

* ``flink_job.py`` — the job's entry (:mod:`payrecon.stream.flink_job`, unchanged);
* ``payrecon-flink.zip`` — for ``--pyFiles``: exactly the payrecon modules the job
  imports, found by following its ``import`` statements (pure modules: they need the
  standard library only, so the cluster's Python needs nothing but ``apache-flink``);
* ``README.md`` — the ``flink run`` command and where the Kafka connector jar goes.

Like every payrecon output folder it is written aside and renamed into place.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import payrecon
from payrecon.errors import ConfigError, InvariantError

JOB_MODULE = "payrecon.stream.flink_job"
ZIP_NAME = "payrecon-flink.zip"
ENTRY_NAME = "flink_job.py"
_ALLOWED_THIRD_PARTY = ("pyflink",)


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise InvariantError(f"module {module} has no source file")
    return Path(spec.origin)


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def bundle_modules(root: str = JOB_MODULE) -> list[str]:
    """The payrecon modules ``root`` needs, with their packages; refuses other third parties."""
    wanted, seen = [root], set()
    while wanted:
        module = wanted.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        wanted += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        for name in _imports(module, _source(module)):
            top = name.partition(".")[0]
            if top == "payrecon":
                if _is_module(name):  # not `from payrecon.x import some_function`
                    wanted.append(name)
            elif top not in sys.stdlib_module_names and top not in _ALLOWED_THIRD_PARTY:
                raise InvariantError(f"{module} imports {name}, which a Flink worker lacks")
    return sorted(seen)


def _archive_name(module: str) -> str:
    path = _source(module)
    relative = module.replace(".", "/")
    return f"{relative}/__init__.py" if path.name == "__init__.py" else f"{relative}.py"


def write_zip(target: Path, modules: list[str]) -> None:
    """The modules' sources, laid out as packages, in a zip for ``--pyFiles``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for module in modules:
            archive.write(_source(module), _archive_name(module))


def readme(modules: list[str]) -> str:
    """How to submit the job (the folder's README.md)."""
    listed = "\n".join(f"- `{module}`" for module in modules)
    return f"""# payrecon stream matcher on a Flink cluster (payrecon {payrecon.__version__})

Needs Flink 2.3 with Python support (`pip install apache-flink==2.3.0` in the Python the
task managers use, Python 3.9-3.12); payrecon's modules come with the job, they need the
standard library only.

```
$FLINK_HOME/bin/flink run \\
    -py {ENTRY_NAME} --pyFiles {ZIP_NAME} \\
    -pyexec /path/to/python-with-apache-flink \\
    --pay 'kafka://broker1:9092/orders?group=payrecon' \\
    --receipt 'kafka://broker1:9092/notifications?group=payrecon' \\
    --sink kafka://broker1:9092/payment-alerts \\
    --dead-letter kafka://broker1:9092/payment-dead-letters \\
    --receipt-timeout 5s --pay-timeout 3s --out-of-orderness 2s --idle-timeout 30s \\
    --checkpoint-interval 10s --parallelism 4
```

Files instead of Kafka: `--pay PATH-OR-URI --receipt PATH-OR-URI` (a file or a folder,
`s3://…`, `hdfs://…`; bounded: the job ends when both are read) and `--sink dir:URI` (JSON
lines, committed at checkpoints and at the end). `--help` lists every option.

Kafka needs the connector, which PyFlink does not ship: put the
`flink-sql-connector-kafka` jar built for your Flink version into `$FLINK_HOME/lib/` (every
node), or pass it with `--jarfile CONNECTOR.jar` to `flink run`. State backend,
checkpoint storage and restarts come from the cluster's `config.yaml`; see
docs/deploy-flink.md in payrecon.

Modules in {ZIP_NAME}:

{listed}
"""


def write_flink_job(out: Path) -> list[Path]:
    """Write the folder (replacing ``out`` atomically); the files written."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    modules = bundle_modules()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the folder is meant to be shared
        shutil.copyfile(_source(JOB_MODULE), staging / ENTRY_NAME)
        write_zip(staging / ZIP_NAME, modules)
        (staging / "README.md").write_text(readme(modules), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / ENTRY_NAME, out / ZIP_NAME, out / "README.md"]
