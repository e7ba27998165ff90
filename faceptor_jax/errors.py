"""The project's error types: errors a user can cause and fix, each one message naming the file,
config key or input and what was expected. The command-line entry points (`main.py`,
`python -m convert`, `faceptor_jax.predict`, `faceptor_jax.export`, `python -m data`) print such
an error as one or two lines and exit 2 (`exit_on_user_error`); any other exception is a bug and
keeps its traceback.

Each subclasses the built-in error it refines (ValueError, FileNotFoundError), so callers catching
those keep working.
"""

import functools
import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """An error the user can fix; its message is all they need to see."""


class ConfigError(UserError, ValueError):
    """A config field of the wrong type, out of range, unknown or inconsistent."""


class DataError(UserError, FileNotFoundError):
    """A dataset folder missing, empty, or not a built dataset."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or model directory missing, damaged or not fitting the model."""


class NotFound(UserError, FileNotFoundError):
    """A file or folder the command needs is not there (a mistyped path)."""


class InputError(UserError, ValueError):
    """An input file or output location that cannot be used."""


EXIT_USER_ERROR = 2


def report(prog: str, error: BaseException) -> int:
    """Print `error` for the user (`prog: message`, no traceback) and return the exit status."""
    print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def user_errors() -> tuple[type[BaseException], ...]:
    """What a top-level handler prints as one message: the project's own errors, and the file
    errors the standard library raises with the path in the message."""
    return (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


def exit_on_user_error(prog: str) -> Callable:
    """Decorator for a command's main: a user error -> one message and `sys.exit(2)`."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except user_errors() as e:
                sys.exit(report(prog, e))

        return run

    return wrap
