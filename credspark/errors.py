"""Errors that jobs turn into a one-line reason and a meaningful exit code."""

from __future__ import annotations

import re

__all__ = [
    "CredsparkError",
    "ConfigError",
    "InputError",
    "ContractError",
    "RejectThresholdError",
    "MissingDataError",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_CONFIG",
    "EXIT_DRIFT",
    "EXIT_INPUT",
    "EXIT_QUALITY_GATE",
    "QualityGateError",
    "SlotsError",
    "jvm_root_cause",
]

EXIT_OK = 0
EXIT_FAILED = 1  # unexpected failure (a bug, a crashed cluster)
EXIT_CONFIG = 2  # bad command line or configuration
EXIT_DRIFT = 3  # scoring: drift beyond the fail threshold
EXIT_INPUT = 4  # the input data broke the contract or is missing
EXIT_QUALITY_GATE = 5  # train: the new model failed the quality gate; 'current' was left where it was


class CredsparkError(Exception):
    """Base class: an expected failure with a one-line reason and an exit code."""

    exit_code = EXIT_FAILED


class ConfigError(CredsparkError, ValueError):
    """Unknown key, wrong type or bad value in configuration or arguments."""

    exit_code = EXIT_CONFIG


class InputError(CredsparkError, ValueError):
    """Input data cannot be used."""

    exit_code = EXIT_INPUT


class ContractError(InputError):
    """A table breaks the input contract; the message names table, column and rule."""

    def __init__(self, table: str, column: str | None, rule: str, detail: str = "") -> None:
        self.table, self.column, self.rule = table, column, rule
        where = f"{table}.{column}" if column else table
        super().__init__(f"{where}: {rule}" + (f" ({detail})" if detail else ""))


class RejectThresholdError(InputError):
    """Too many rows of a table were rejected."""


class MissingDataError(InputError):
    """A table or partition the job needs does not exist."""


class QualityGateError(CredsparkError):
    """A trained model failed the quality gate: it was stored but not made ``current`` (exit code 5)."""

    exit_code = EXIT_QUALITY_GATE


class SlotsError(ConfigError):
    """A distributed stage cannot get the task slots its workers need at once (exit code 2)."""


#: ``[package.]ClassName: message`` on a line of a Java exception's text (``Caused by:`` prefix optional).
_JAVA_EXCEPTION = re.compile(
    r"^(?:Caused by: |: )?((?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error|Failed|Failure))): (.+)$"
)


def jvm_root_cause(text: str, *, qualified: bool = False) -> str | None:
    """The root cause of a JVM error's text as ``ClassName: message``, or None when it names no Java exception.

    A Py4JJavaError's text starts with "An error occurred while calling o123.collect." and holds the Java
    exception chain with its stack frames; the cause is the last top-level ``Caused by:`` line (indented ones
    belong to suppressed exceptions), else the first exception line (e.g. ``BarrierJobSlotsNumberCheckFailed:
    [SPARK-24819]: Barrier execution mode does not allow run a barrier stage that requires more slots than
    ...``).

    Args:
        text: ``str()`` of the error.
        qualified: Keep the package (``java.io.IOException: ...``). Defaults to False (``IOException: ...``).

    Returns:
        One line, or None.
    """
    found = []
    for line in text.splitlines():
        if line.startswith((" ", "\t")):  # stack frames and suppressed exceptions are indented
            continue
        m = _JAVA_EXCEPTION.match(line.strip())
        if m:
            name = m.group(1) if qualified else m.group(2)
            found.append((line.startswith("Caused by: "), f"{name}: {m.group(3).strip()}"))
    if not found:
        return None
    causes = [msg for is_cause, msg in found if is_cause]
    return causes[-1] if causes else found[0][1]
