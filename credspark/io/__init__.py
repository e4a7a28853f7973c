"""Spark session, table reads/writes and run summaries: the only modules that touch storage."""
