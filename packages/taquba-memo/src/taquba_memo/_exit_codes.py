"""The ``taquba-memo`` command's exit codes: the one table the CLI, ``--help`` and docs follow.

The numbers are a public contract (cron, CI and Kubernetes ``podFailurePolicy``
rules match on them): add a code, never renumber one. docs/cli.md's table
may word a meaning at more length, but must contain each one; a test holds
the two together.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """How a ``taquba-memo`` command ended; ``meaning`` is its one line for ``--help``."""

    _value_: int
    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "success"
    INCOMPLETE = 1, "finished, but some runs or entries could not be deleted"
    USAGE = 2, "bad usage or argument"
    BAD_URL = 3, "bad URL: malformed, unknown scheme, or refused by the adapter"
    ADAPTER_MISSING = 4, "the adapter package for the URL's scheme is not installed"
    ACCESS_DENIED = (
        5,
        "access denied: missing, wrong or insufficient credentials, "
        "also a denied listing or delete",
    )
    CONTAINER_NOT_FOUND = 6, "the bucket or container, or the file:// directory, does not exist"
    BACKEND_ERROR = 7, "any other storage error"
    INTERRUPTED = 130, "stopped by SIGINT (Ctrl-C), after printing its summary"
    TERMINATED = 143, "stopped by SIGTERM, after printing its summary"


def exit_codes_help() -> str:
    """The ``exit codes:`` block of ``taquba-memo --help``: one code and its meaning a line."""
    width = max(len(str(code.value)) for code in ExitCode)
    lines = [f"  {code.value:<{width}}  {code.meaning}" for code in ExitCode]
    return "\n".join(["exit codes:", *lines])
