"""Typed errors of the engine. The CLI boundary turns them into messages and exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ITEM_ERRORS = 1  # finished, but some items failed; or aborted at the prompt
    USAGE = 2  # bad options or configuration, found before anything was read
    FATAL = 3  # the run could not go on
    INTERRUPTED = 130  # SIGINT or SIGTERM


class BackfillError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = ExitCode.FATAL


class ConfigurationError(BackfillError):
    """Missing project, unreadable credentials, options that do not go together."""

    exit_code = ExitCode.USAGE


class Aborted(BackfillError):
    """The operator did not confirm."""

    exit_code = ExitCode.ITEM_ERRORS


class DatabaseError(BackfillError):
    """The database could not be reached, or refused a request, and retrying did not help."""

    exit_code = ExitCode.FATAL


STOPPED_ON_REQUEST = "stopped on request"  # a run's stop, obeyed wherever it waited


class RunInterrupted(BackfillError):
    """SIGINT or SIGTERM arrived; the run stopped at a clean point."""

    exit_code = ExitCode.INTERRUPTED
    # Set once the run's end was said (its cause when it came, its end in the summary,
    # the resume command): the CLI boundary then adds no line of its own.
    said = False
