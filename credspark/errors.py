"""Errors that jobs turn into a one-line reason and a meaningful exit code."""

from __future__ import annotations

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
