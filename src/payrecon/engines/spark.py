"""The Spark engine: the one match definition as Spark SQL, locally or on a cluster.

``load`` streams each relation's Arrow batches into one Parquet file in the run's work
folder (bounded memory: one row group at a time). ``match`` registers the files as the
temporary views ``ledger``, ``channel`` and ``pool``, runs
:meth:`~payrecon.engines.definition.MatchDefinition.sql` compiled for Spark, lets Spark
write its part files, and merges them with pyarrow, batch by batch, into the one
``outcomes.parquet`` of the :data:`~payrecon.core.outcomes.OUTCOMES` schema.

On a cluster the executors read the inputs and write the parts in the work folder, so it
must be a path every node sees at the same place (``engine.temp_directory`` on a shared
mount); see ``docs/deploy-spark.md``.

One SparkSession serves the whole process (starting a JVM takes seconds): the first
engine creates it from the settings, later ones reuse it, and each engine works in a
child session of its own so that concurrent runs never see each other's views.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pyarrow as pa
import pyarrow.parquet as pq

from payrecon.config import EngineSettings
from payrecon.core.outcomes import OUTCOMES, POOL
from payrecon.core.schema import CANONICAL
from payrecon.engines.base import OUTCOME_DICTIONARY_COLUMNS, Engine, Relation
from payrecon.engines.definition import MatchDefinition
from payrecon.errors import ConfigError, DependencyError, RunError, require

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_SCHEMAS = {"ledger": CANONICAL, "channel": CANONICAL, "pool": POOL}
_ROW_GROUP_ROWS = 128 * 1024
_BATCH_ROWS = 128 * 1024
_INPUT_DICTIONARY = ["channel", "merchant_id", "kind", "status", "currency", "source", "side"]
# Session settings the match depends on; applied to every session the engine uses.
REQUIRED_CONF = {
    # Day bounds and txn_time compare as instants; UTC keeps rendering zone-stable.
    "spark.sql.session.timeZone": "UTC",
    # INT96 would lose the UTC annotation; micros is what the OUTCOMES schema holds.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# Defaults for a session payrecon starts itself (``spark_conf`` overrides them).
_STARTUP_CONF = {
    "spark.app.name": "payrecon",
    "spark.ui.showConsoleProgress": "false",
}
# Spark logs INFO and WARN lines to stderr at startup; payrecon's stderr is for progress.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.apache.name = org.apache
logger.apache.level = error
"""
_CONNECT_HINT = (
    "Spark Connect needs the client's extra packages; install them with:"
    " pip install 'pyspark[connect]'"
)


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, settings: EngineSettings, workdir: Path) -> None:
        require("pyspark", "spark")
        workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir.resolve()
        self._spark = open_session(settings, self._workdir)

    def load(self, relation: Relation, records: pa.RecordBatchReader) -> int:
        """Stream ``records`` into ``<workdir>/<relation>.parquet``; thread-safe per relation."""
        return write_parquet(records, self._input(relation), _SCHEMAS[relation])

    def match(self, definition: MatchDefinition, outcomes: Path) -> None:
        parts = self._workdir / "outcomes.spark"
        try:
            for relation in _SCHEMAS:
                self._view(relation)
            result = self._spark.sql(definition.sql("spark"))
            result.write.mode("overwrite").parquet(parts.as_uri())
        except Exception as exc:
            if not _is_spark_error(exc):
                raise
            raise RunError(f"the match failed in Spark: {_first_line(exc)}") from exc
        merge_parts(parts, outcomes)
        shutil.rmtree(parts, ignore_errors=True)

    def close(self) -> None:
        try:
            for relation in _SCHEMAS:
                self._spark.catalog.dropTempView(relation)
            if _is_connect(self._spark):
                self._spark.stop()  # releases this client's server-side session only
        except Exception as exc:
            # A Spark that is already gone has nothing left to release; an error raised
            # inside the run is the one to report.
            if not _is_spark_error(exc):
                raise

    def _input(self, relation: str) -> Path:
        return self._workdir / f"{relation}.parquet"

    def _view(self, relation: str) -> None:
        path = self._input(relation)
        if not path.exists():  # a relation nobody loaded is empty, with its columns
            pq.write_table(_SCHEMAS[relation].empty_table(), path)
        self._spark.read.parquet(path.as_uri()).createOrReplaceTempView(relation)


# -- the session --------------------------------------------------------------------------


def open_session(settings: EngineSettings, workdir: Path) -> SparkSession:
    """A session of its own for one engine, on the process's shared Spark application.

    ``spark_master`` ``sc://…`` connects to a Spark Connect server; any other URL (or
    ``local[*]`` when unset) starts the application in this process, unless
    ``spark-submit`` already did (then its ``--master`` holds).
    """
    master = settings.spark_master
    if master is not None and master.startswith("sc://"):
        return _connect_session(master, settings.spark_conf)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    started_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if master is not None or not started_by_submit:
        builder = builder.master(master or "local[*]")
    conf = {**_STARTUP_CONF, **settings.spark_conf, **REQUIRED_CONF}
    if not started_by_submit:
        conf["spark.driver.extraJavaOptions"] = _quiet_logs(workdir, conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    shared = builder.getOrCreate()
    _check_master(shared, master)
    session = shared.newSession()
    _apply(session, {**settings.spark_conf, **REQUIRED_CONF})
    return session


def _connect_session(url: str, spark_conf: dict[str, str]) -> SparkSession:
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError as exc:
        raise DependencyError(f"{_CONNECT_HINT} ({exc})") from exc
    try:
        session = ConnectSession.builder.remote(url).create()
    except Exception as exc:
        if not _is_spark_error(exc):
            raise
        raise RunError(f"cannot reach Spark Connect at {url}: {_first_line(exc)}") from exc
    # The Connect client has the classic session's API (in a class of its own).
    classic_api = cast("SparkSession", session)
    _apply(classic_api, {**spark_conf, **REQUIRED_CONF})
    return classic_api


def _quiet_logs(workdir: Path, conf: dict[str, str]) -> str:
    """JVM options pointing log4j at a config that keeps Spark's stderr to errors.

    Read once, when the JVM starts; a user's own ``-Dlog4j2.configurationFile`` comes
    later on the command line and wins.
    """
    config = workdir / "log4j2.properties"
    config.write_text(_LOG4J2, encoding="utf-8")
    own = conf.get("spark.driver.extraJavaOptions", "")
    return f"-Dlog4j2.configurationFile={config.as_uri()} {own}".strip()


def _check_master(session: SparkSession, wanted: str | None) -> None:
    running = session.sparkContext.master
    if wanted is not None and running != wanted:
        raise ConfigError(
            f"--spark-master {wanted}: this process already runs Spark on {running};"
            " one process holds one Spark application"
        )


def _apply(session: SparkSession, conf: dict[str, str]) -> None:
    """Set the runtime settings; static ones only take effect when an application starts."""
    for key, value in conf.items():
        if session.conf.isModifiable(key):
            session.conf.set(key, value)


def _is_connect(session: SparkSession) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def _is_spark_error(exc: BaseException) -> bool:
    from py4j.protocol import Py4JError  # type: ignore[import-untyped]
    from pyspark.errors import PySparkException

    return isinstance(exc, PySparkException | Py4JError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- Parquet in and out ------------------------------------------------------------------


def write_parquet(records: pa.RecordBatchReader, path: Path, schema: pa.Schema) -> int:
    """Write ``records`` to one Parquet file in row groups of :data:`_ROW_GROUP_ROWS`.

    Holds at most one row group in memory; an empty input still gives a file with the
    columns, so Spark can read it.
    """
    pending: list[pa.RecordBatch] = []
    pending_rows = rows = 0
    dictionary = [name for name in _INPUT_DICTIONARY if name in schema.names]
    with pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=dictionary) as out:
        for batch in records:
            if not batch.num_rows:
                continue
            pending.append(batch if batch.schema == schema else batch.cast(schema))
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if pending_rows >= _ROW_GROUP_ROWS:
                out.write_table(pa.Table.from_batches(pending, schema), _ROW_GROUP_ROWS)
                pending, pending_rows = [], 0
        if pending:
            out.write_table(pa.Table.from_batches(pending, schema), _ROW_GROUP_ROWS)
    return rows


def merge_parts(folder: Path, outcomes: Path) -> None:
    """Stream Spark's part files into one Parquet file of exactly :data:`OUTCOMES`."""
    parts = sorted(folder.glob("part-*.parquet"))
    with pq.ParquetWriter(
        outcomes, OUTCOMES, compression="snappy", use_dictionary=OUTCOME_DICTIONARY_COLUMNS
    ) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS):
                writer.write_batch(batch.select(OUTCOMES.names).cast(OUTCOMES))
