"""The project's error types: errors a user can cause and fix, each one message naming the file,
config key or input and what was expected. The command-line entry points (`main.py`,
`python -m convert`, `faceptor_jax.predict`, `faceptor_jax.export`, `python -m data`) print such
an error as one or two lines and exit 2 (`exit_on_user_error`); any other exception is a bug and
keeps its traceback.

Each subclasses the built-in error it refines (ValueError, FileNotFoundError), so callers catching
those keep working.
"""

import contextlib
import errno
import functools
import logging
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


class QuietOrbaxErrors(logging.Filter):
    """Orbax logs a failed background write with its traceback, then raises the error where a
    command reports it once: on the absl logger, keep orbax's line and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "orbax" in record.pathname:
            record.exc_info, record.exc_text = None, None
        return True


def ignore_closed_event_loops() -> None:
    """A failed tensorstore read leaves callbacks that fire on orbax's closed event loop later,
    printed as 'Exception ignored ... Event loop is closed' tracebacks: drop those (only)."""
    previous = sys.unraisablehook
    if getattr(previous, "closed_loops_ignored", False):
        return

    def hook(unraisable) -> None:
        e = unraisable.exc_value
        if not (isinstance(e, RuntimeError) and "Event loop is closed" in str(e)):
            previous(unraisable)

    hook.closed_loops_ignored = True
    sys.unraisablehook = hook


@contextlib.contextmanager
def quiet_orbax_tracebacks():
    """Orbax's failed-write tracebacks dropped (their one line kept) while this runs."""
    ignore_closed_event_loops()
    quiet = QuietOrbaxErrors()
    logging.getLogger("absl").addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger("absl").removeFilter(quiet)


def report(prog: str, error: BaseException) -> int:
    """Print `error` for the user (`prog: message`, no traceback) and return the exit status."""
    print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def reason(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, shortened (orbax / tensorstore ones are long)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_errors() -> tuple[type[BaseException], ...]:
    """What a top-level handler prints as one message: the project's own errors, and the file
    errors the standard library raises with the path in the message."""
    return (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


DISK_ERRNOS = {
    errno.ENOSPC: "No space left on device",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EROFS: "Read-only file system",
    errno.EACCES: "Permission denied",
    errno.EPERM: "Operation not permitted",
}


def disk_problem(error: BaseException) -> str | None:
    """'No space left on device' (a full disk, a quota, a read-only or forbidden destination:
    the user's to fix) for an OSError or a tensorstore error saying so (orbax raises those as
    ValueError), else None."""
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
        return DISK_ERRNOS[error.errno]
    if isinstance(error, ValueError | RuntimeError):
        text = str(error)
        return next((why for why in DISK_ERRNOS.values() if why in text), None)
    return None


def exit_on_user_error(prog: str) -> Callable:
    """Decorator for a command's main: a user error -> one message and `sys.exit(2)`."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except user_errors() as e:
                sys.exit(report(prog, e))
            except (OSError, ValueError, RuntimeError) as e:
                if not disk_problem(e):
                    raise
                sys.exit(report(prog, f"cannot write: {disk_problem(e)} ({reason(e)})"))

        return run

    return wrap
