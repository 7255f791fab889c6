"""Cassandra: connection, schema migrations, repositories."""
