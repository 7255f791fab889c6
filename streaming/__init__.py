"""Spark Structured Streaming and Kafka: the only package that imports pyspark."""
