"""One exception tree for tfkit. Every message says what to do next.

Example:
    >>> raise UnknownNameError("model", "mobilenet_v4", ["mobilenet_v2", "mobilenet_v3"])
"""
from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable


class TfkitError(Exception):
    """Base of every error tfkit raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(TfkitError):
    """The user asked for something that cannot be done as asked (bad name, bad value, bad path)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name that no registry holds; suggests the closest known names."""

    def __init__(self, what: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"Unknown {what} {name!r}.{hint} Known: {', '.join(known) or '(none)'}."
        )
        self.what, self.name, self.known = what, name, known


class InputPathError(UsageError):
    """A path the user gave does not exist or is not what it should be."""


class ModelFileError(InputPathError):
    """A model file (.tflite, .keras, .h5, SavedModel) that cannot be read, or may not be loaded safely."""


class DataError(UsageError):
    """Video data that cannot be used: not a video, unreadable, empty dataset folder."""


class RecipeError(UsageError):
    """A recipe that does not fit its schema; names the file, field and allowed values."""


class ConversionError(TfkitError):
    """The TFLite converter failed, or produced a model that does not run."""


class ParityError(TfkitError):
    """A converted model disagrees with its source beyond the allowed threshold."""


class BenchmarkError(TfkitError):
    """A benchmark run failed on its device; the message carries the device's own words."""


class UnsupportedDeviceError(UsageError):
    """A well-formed device address of a kind this tfkit cannot run on; says what to do instead."""


class ToolNotFoundError(TfkitError):
    """An external tool (binary, runtime, device) is absent; the message says how to get it."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached a running command (the CLI turns both into this). A KeyboardInterrupt,
    so `except Exception` in a step does not swallow it; the running step's staging folder becomes
    `<out>.failed` with its log; the CLI exits 128 + the signal number (130, 143), as shells do."""

    def __init__(self, signum: int):
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(f"interrupted by {name}")
        self.signum, self.signal_name, self.exit_code = signum, name, 128 + signum


def first_line(e: BaseException) -> str:
    """An exception's first message line (its type name when the message is empty): what one-line
    errors quote from a library's multi-line traceback text.

    Example:
        >>> first_line(ValueError("bad shape\\n  at op 3")), first_line(KeyError())
        ('bad shape', 'KeyError')
    """
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
