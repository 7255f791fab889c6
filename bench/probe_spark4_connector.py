"""Does the Spark Cassandra Connector 3.5.1 (built for Spark 3.5, Scala 2.13) work on a
Spark 4 line, for what the persist query asks of it?

No connector release names Spark 4. This probe runs, on whatever pyspark it is started
with, the connector's operations the persist query (``streaming.persist_job``) uses:

* append writes of rows grouped by partition in 32 KiB batches, timed;
* the ``writetime`` option with explicit nulls (``latest_by_ward``): a later batch that
  brings older cells must not overwrite newer ones, and a newer null must clear a value;
* a read back of every row;
* the connector's catalog (``spark.table("cass.<keyspace>.<table>")``), which the
  project does not use (it creates its schema with cassandra-driver).

Run it in the venv of ``bench_realtime_mode.py`` (pyspark 4.x), with the connector's
jars fetched by Maven from Maven Central (the ``scala-lang`` artefacts excluded, as
Spark brings its own, and the older ``commons-lang3`` and ``slf4j-api`` removed):

    mkdir -p /tmp/scc213 && cd /tmp/scc213   # pom.xml: one dependency,
    # com.datastax.spark:spark-cassandra-connector_2.13:3.5.1 (exclusion org.scala-lang:*)
    mvn -q dependency:copy-dependencies -DoutputDirectory=lib
    rm lib/commons-lang3-3.10.jar lib/slf4j-api-1.7.26.jar
    /tmp/rtm/bin/pip install cassandra-driver     # the probe's schema, as the project's
    /tmp/rtm/bin/python bench/probe_spark4_connector.py --jars /tmp/scc213/lib
    .venv/bin/python bench/probe_spark4_connector.py --jars ~/.cache/icu-monitor/jars  # 3.5

Prints one JSON object; exits 1 if a check fails. Each run uses a keyspace of its own and
drops it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jars", type=Path, required=True, help="the connector's jars")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--rows", type=int, default=20_000, help="rows per timed write")
    p.add_argument("--writes", type=int, default=5)
    p.add_argument("--master", default="local[2]")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import pyspark
    from cassandra.cluster import Cluster
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    jars = sorted(str(j) for j in args.jars.glob("*.jar"))
    spark = (SparkSession.builder.master(args.master).appName("probe-spark4-connector")
             .config("spark.jars", ",".join(jars))
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.cassandra.connection.host", args.host)
             .config("spark.cassandra.output.batch.size.bytes", "32768")
             .config("spark.cassandra.output.batch.grouping.key", "partition")
             .config("spark.sql.catalog.cass",
                     "com.datastax.spark.connector.datasource.CassandraCatalog")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    keyspace = f"probe_{uuid.uuid4().hex[:8]}"
    result: dict = {"spark": pyspark.__version__, "keyspace": keyspace, "checks": {}}
    fmt = "org.apache.spark.sql.cassandra"
    cluster = Cluster([args.host])
    session = cluster.connect()
    session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"CREATE TABLE {keyspace}.history (patient text, ts bigint, hr double, "
                    "spo2 double, PRIMARY KEY (patient, ts))")
    session.execute(f"CREATE TABLE {keyspace}.latest (bed text PRIMARY KEY, hr double)")
    try:
        frame = spark.range(args.rows).select(
            (F.col("id") % 1000).cast("string").alias("patient"),
            (F.col("id") * 1000).alias("ts"),
            (60 + F.col("id") % 60).cast("double").alias("hr"),
            (90 + F.col("id") % 10).cast("double").alias("spo2"))
        seconds = []
        for i in range(args.writes):
            started = time.monotonic()
            (frame.withColumn("ts", F.col("ts") + i * args.rows * 1000).write.format(fmt)
             .mode("append").options(keyspace=keyspace, table="history").save())
            seconds.append(round(time.monotonic() - started, 2))
        result["history_write_s"] = seconds
        stored = spark.read.format(fmt).options(keyspace=keyspace, table="history").load()
        result["checks"]["history_rows"] = stored.count() == args.rows * args.writes

        opts = {"keyspace": keyspace, "table": "latest", "writetime": "w",
                "spark.cassandra.output.ignoreNulls": "false"}

        def put(rows: list[tuple]) -> None:
            (spark.createDataFrame(rows, "bed string, hr double, w long").write
             .format(fmt).mode("append").options(**opts).save())

        put([("1", 120.0, 2_000_000), ("2", None, 2_000_000)])
        put([("1", 80.0, 1_000_000), ("2", 70.0, 1_000_000)])  # older: must not win
        latest = {r.bed: r.hr for r in spark.read.format(fmt)
                  .options(keyspace=keyspace, table="latest").load().collect()}
        result["latest"] = latest
        result["checks"]["writetime_and_nulls"] = latest == {"1": 120.0, "2": None}
        try:
            catalog_rows = spark.table(f"cass.{keyspace}.latest").count()
            result["catalog"] = "ok" if catalog_rows == 2 else f"{catalog_rows} rows"
        except Exception as e:  # not used by the project: reported, not a failed check
            result["catalog"] = f"{type(e).__name__}: {str(e)[:300]}"
    except Exception as e:  # a probe: the failure is its result
        result["error"] = f"{type(e).__name__}: {str(e)[:500]}"
    finally:
        spark.stop()
        session.execute(f"DROP KEYSPACE {keyspace}", timeout=120)
        cluster.shutdown()
    print(json.dumps(result))
    return 0 if result["checks"] and all(result["checks"].values()) \
        and "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
