"""Spark orchestration: one function per job."""
