"""A Spark driver JVM of a test's own."""

from __future__ import annotations


def fresh_spark_jvm() -> None:
    """Stop any Spark session an earlier test of this process left, and its JVM. Jars (the
    connector, the factory) and the connector's settings only reach the driver when its
    JVM starts."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    if SparkContext._gateway is not None:
        SparkContext._gateway.shutdown()
        SparkContext._gateway = None
        SparkContext._jvm = None
