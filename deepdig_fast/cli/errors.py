"""The error every command reports in one line, and the one-line form of any exception."""

from __future__ import annotations


class CLIError(Exception):
    """A problem with the user's arguments or files, reported in one line."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
