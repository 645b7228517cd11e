"""The error tree every stage raises, and the exit code each maps to.

A user sees one line (``str(error)``) and a documented exit code, never a traceback.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in the toolchain: the only case that may print a traceback (with --debug)
    BAD_INPUT = 2  # unreadable model, bad config, bad data, bad option value
    TOOL_FAILED = 3  # an external tool (Vela, compiler, converter) failed
    BUDGET_EXCEEDED = 4  # the result does not fit the target's SRAM/flash budget
    VERIFICATION_FAILED = 5  # outputs disagree beyond the accepted tolerance


class ToolchainError(Exception):
    """Base of every error the toolchain raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(ToolchainError):
    """The user gave something unusable (file, option, data)."""

    exit_code = ExitCode.BAD_INPUT


class ModelFormatError(InputError):
    """A model file that is not a usable .tflite (or Keras) model."""


class ConfigError(InputError):
    """A config file, hardware profile or option that is invalid or contradictory."""


class DataError(InputError):
    """A dataset that is malformed (shapes, labels, NaN, too few samples) or missing."""


class ToolError(ToolchainError):
    """An external tool failed or produced output we cannot trust."""

    exit_code = ExitCode.TOOL_FAILED


class BudgetExceeded(ToolchainError):
    """A compiled model does not fit the target's memory budget."""

    exit_code = ExitCode.BUDGET_EXCEEDED


class VerificationError(ToolchainError):
    """A rewritten model's outputs disagree with the original beyond tolerance."""

    exit_code = ExitCode.VERIFICATION_FAILED
