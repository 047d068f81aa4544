"""Quieting TensorFlow's and LiteRT's own log lines in the CLI: every run otherwise prints
`failed call to cuInit ... UNKNOWN ERROR (303)`, oneDNN and CPU-feature notices, absl's
"before absl::InitializeLog()" banner, the converter's `fully_quantize: 0, inference_type: 6 ...`
and LiteRT's "Created TensorFlow Lite XNNPACK delegate" - lines that read like failures and are not.

TensorFlow 2.21 logs through absl before it reads TF_CPP_MIN_LOG_LEVEL, and the converter writes
to fd 2 from C++, so an environment variable is not enough: `StderrFilter` puts a pipe (or, on a
terminal, a pseudo-terminal, so progress bars still see a terminal) in front of fd 2 and forwards
every line except the known noise. Child processes that inherit fd 2 are filtered the same way.
`tfkit --verbose CMD` turns all of it off. Nothing here runs at import.

Example:
    >>> with StderrFilter():  # doctest: +SKIP
    ...     import tensorflow
"""
from __future__ import annotations

import os
import re
import select
import sys
import threading
from typing import Self

MODE_ENV = "TFKIT_TF_LOGS"  # "quiet" or "verbose": set by the CLI, read by tf() in every process
QUIET, VERBOSE = "quiet", "verbose"

# absl's line format: severity letter, MMDD, time, thread id, file:line]
_ABSL = rb"[IWEF]\d{4} [\d:.]+\s+\d+ (?P<src>[\w./-]+):\d+\] "
# Info and warning lines go; error lines only from the sources known to cry wolf (no CUDA here).
_NOISE = re.compile(rb"|".join([
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    rb"[IW]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ",
    _ABSL.replace(rb"(?P<src>[\w./-]+)", rb"(?:cuda_\w+|cudart_stub)\.cc"),
    rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags",
    rb"fully_quantize: \d+, inference_type: \d+, input_inference_type: ",
    rb"INFO: (Created TensorFlow Lite (XNNPACK )?delegate|Initialized TensorFlow Lite runtime)",
    rb"WARNING:absl:",
    rb"WARNING:tensorflow:",
]))
# A partial line that may still grow into noise is held until its newline (or a short pause).
_LEADS = re.compile(rb"[IWEF](\d{0,4}( .*)?)?$|W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?$|f(u(l(l(y(_.*)?)?)?)?)?$"
                    rb"|I(N(F(O(:.*)?)?)?)?$|T(o( .*)?)?$")
_HOLD_S = 0.2


def is_noise(line: bytes) -> bool:
    """Whether one line (with or without its newline) is TensorFlow/LiteRT noise.

    Example:
        >>> is_noise(b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32")
        True
    """
    return _NOISE.match(line.lstrip(b"\r")) is not None


def drop_noise(text: str) -> str:
    """`text` without its noise lines (for a child's captured stderr shown in an error)."""
    return "\n".join(ln for ln in text.splitlines() if not is_noise(ln.encode("utf-8", "replace")))


def mode() -> str:
    return os.environ.get(MODE_ENV, "")


def quiet_environment(verbose: bool) -> dict:
    """Set, before TensorFlow loads, what this process and its children log: the CLI calls it once.
    A TF_CPP_MIN_LOG_LEVEL the user set is kept. Returns the values it replaced (see `restore`)."""
    saved = {name: os.environ.get(name) for name in (MODE_ENV, "TF_CPP_MIN_LOG_LEVEL")}
    os.environ[MODE_ENV] = VERBOSE if verbose else QUIET
    # 3 also hides the cuInit error line; 0 shows everything TensorFlow logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    return saved


def restore(saved: dict) -> None:
    """Put back what `quiet_environment` replaced (a CLI run inside a test leaves no trace)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def quiet_python_loggers() -> None:
    """After TensorFlow is imported in quiet mode: its Python-side absl/tensorflow loggers and its
    library warnings ("Statistics for quantized inputs were expected ...") are not the user's."""
    import logging
    import warnings

    for name in ("absl", "tensorflow", "tf_keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|keras|tensorflow_model_optimization)(\.|$)")


class StderrFilter:
    """Forward fd 2 through a thread that drops noise lines; `stop()` (or leaving the `with`) puts
    the real stderr back after the last line is through."""

    def __init__(self):
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        if os.isatty(2):
            import pty
            import tty

            read_end, write_end = pty.openpty()
            tty.setraw(write_end)  # bytes through unchanged (no \n -> \r\n)
            try:
                import fcntl
                import termios

                size = fcntl.ioctl(self._saved, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(write_end, termios.TIOCSWINSZ, size)  # progress bars keep their width
            except OSError:
                pass
        else:
            read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        # The pump owns its own copy of the real stderr: a child still holding the pipe after stop()
        # keeps the pump alive, and it must never write to a descriptor number closed (and reused) here.
        self._thread = threading.Thread(target=self._pump, args=(read_end, os.dup(self._saved)),
                                        name="tfkit-stderr", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes our write end: the pump sees EOF once children are done
        os.close(self._saved)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._saved, self._thread = None, None

    def _pump(self, fd: int, out: int) -> None:
        held = b""
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], _HOLD_S if held else None)
                if not ready:  # a partial line sat still: it is a prompt or a bar, not noise
                    _write_all(out, held)
                    held = b""
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # a pseudo-terminal with no writer left reads as EIO
                    chunk = b""
                if not chunk:
                    break
                *lines, held = re.split(rb"(?<=[\n\r])", held + chunk)
                keep = b"".join(ln for ln in lines if not is_noise(ln))
                if held and not _LEADS.match(held):
                    keep, held = keep + held, b""
                _write_all(out, keep)
            if held and not is_noise(held):
                _write_all(out, held)
        except OSError:
            pass  # the real stderr went away: nothing left to write to
        finally:
            os.close(fd)
            os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
