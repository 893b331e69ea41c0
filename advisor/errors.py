"""Errors the advisor expects, each printed as one line by the CLI.

`InputError` (exit code 2) is bad usage or bad input; `AdvisorFailure` (exit code 1) is a
failure while working on valid input. Anything else is a bug and shows a traceback only
with ``--debug``.
"""

from __future__ import annotations


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message: what a one-line error shows.

    ``with_type`` prefixes the exception's class name (for errors that are not the advisor's own,
    where the type says what kind of failure it was); an empty message gives the type alone.
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if not first:
        return type(exc).__name__
    return f"{type(exc).__name__}: {first}" if with_type else first


class AdvisorError(Exception):
    """Base class of every error the CLI prints as one line."""

    exit_code = 1


class InputError(AdvisorError):
    """The user's input or usage is wrong: exit code 2."""

    exit_code = 2


class AdvisorFailure(AdvisorError):
    """Valid input, but the work failed: exit code 1."""

    exit_code = 1


class PluginError(AdvisorError):
    """A plugin registered something invalid or failed to load."""

    exit_code = 1

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin
        self.reason = message


class TrainingDiverged(AdvisorFailure):
    """A loss became NaN or infinite; training stopped early."""
