"""Fault injection for tests, set through environment variables and never through the job configuration.

The driver reads them (:func:`injected`) and hands the values to the code it ships to executors or
training workers, so a test sets them in its own process (``monkeypatch.setenv``) before it calls a
pipeline or a job's ``main``. Unset in production: nothing here changes a run unless a variable is set.
"""

from __future__ import annotations

import os

from credspark.errors import ConfigError

__all__ = ["SCORE_FAIL_AFTER_BATCHES", "DEEP_FAIL_AT_EPOCH", "DEEP_FAIL_RANK", "injected"]

#: The scoring UDF raises after this many model batches of a task.
SCORE_FAIL_AFTER_BATCHES = "CREDSPARK_TEST_SCORE_FAIL_AFTER_BATCHES"
#: The deep-model training worker of rank :data:`DEEP_FAIL_RANK` raises at the start of this epoch.
DEEP_FAIL_AT_EPOCH = "CREDSPARK_TEST_DEEP_FAIL_AT_EPOCH"
#: The rank that raises (see :data:`DEEP_FAIL_AT_EPOCH`); 1 when unset.
DEEP_FAIL_RANK = "CREDSPARK_TEST_DEEP_FAIL_RANK"


def injected(name: str) -> int | None:
    """The integer a fault-injection variable is set to, or None when it is unset or empty.

    Raises:
        ConfigError: The variable is set to something that is not an integer (names the variable).
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError as e:
        raise ConfigError(f"environment variable {name}={text!r}: expected an integer") from e
