"""Exceptions shared by the whole library.

``InputError`` is what bad user input (a file, a field, a value) raises. Its message is one line
that names the file or field, the offending value and what is allowed; the CLI prints it and
exits with code 2.
"""

from __future__ import annotations

import os


class PlexlocError(Exception):
    """Base class of plexloc's own errors."""


class InputError(PlexlocError, ValueError):
    """Bad input from a user: wrong file, shape, field or value.

    Args:
        message: what is wrong and what is allowed.
        source: the file (or config field) the problem is in; prefixed to the message.
    """

    def __init__(self, message: str, *, source: str | os.PathLike | None = None):
        self.source = None if source is None else str(source)
        self.reason = message
        text = message if self.source is None else f"{self.source}: {message}"
        super().__init__(" ".join(text.split("\n")))
