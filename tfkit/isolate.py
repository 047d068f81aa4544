"""Reading untrusted files in a child process: a hostile or corrupt .tflite can make a flatbuffer
reader allocate without bound, recurse, hang or crash LiteRT. `run_child` runs `python -m MODULE
ARGS` with a timeout, reads the one JSON object it prints, and turns every failure (timeout,
signal, no output, {"error": ...}) into one `ModelFileError`; `child_main` is the child's side,
with its address space capped.

Example:
    >>> run_child("tfkit.convert.metadata", ["model.tflite"], what="model.tflite")  # doctest: +SKIP
    {'describe': {...}}
"""
from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from tfkit.errors import ModelFileError, TfkitError

TIMEOUT_S = 120.0
CHILD_MEMORY_BYTES = 2 << 30  # address space a child may add beyond what it holds after imports
MAX_BYTES = 2 << 30  # a .tflite flatbuffer cannot exceed 2 GiB


def child_command(module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", module, *args]


def check_size(path: Path) -> None:
    if path.is_file() and path.stat().st_size > MAX_BYTES:
        raise ModelFileError(f"{path} is {path.stat().st_size} bytes: larger than any TFLite flatbuffer (2 GiB)")


def run_child(module: str, args: list[str], *, what: str, timeout_s: float = TIMEOUT_S,
              command: list[str] | None = None) -> dict:
    """Run the child and return its JSON object; `command` replaces the default (tests)."""
    import tfkit

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(tfkit.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run(command or child_command(module, args), capture_output=True, timeout=timeout_s,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"reading {what} took longer than {timeout_s:g} s and was stopped; the file is "
                             "corrupt or hostile") from None
    if done.returncode < 0:
        try:
            sig = signal.Signals(-done.returncode).name
        except ValueError:
            sig = f"signal {-done.returncode}"
        raise ModelFileError(f"reading {what} crashed the reader process ({sig}); the file is corrupt or hostile "
                             "(it was read in a child process, so nothing else was affected)")
    try:
        lines = done.stdout.decode("utf-8", "replace").splitlines()
        result = json.loads([ln for ln in lines if ln.startswith("{")][-1])
    except (ValueError, IndexError):
        raise ModelFileError(f"reading {what} failed (exit {done.returncode}): "
                             f"{last_words(done.stderr.decode('utf-8', 'replace'))}") from None
    if done.returncode != 0 or not isinstance(result, dict) or "error" in result:
        error = result.get("error") if isinstance(result, dict) else None
        raise ModelFileError(str(error or f"reading {what} failed (exit {done.returncode})"))
    return result


# An exception class name at the start of a line ("KeyError: 'x'", "struct.error: unpack ..."):
# the user gets the words after it, never the name of tfkit's or a library's internals.
_EXCEPTION_NAME = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit|Interrupt|error|Warning)"
                            r"(?::\s*|$)")


def last_words(stderr: str) -> str:
    """The last line a failed child wrote that is not TensorFlow/LiteRT noise or a traceback's
    frame, without an exception class name in front; "no output" if there is none."""
    from tfkit._compat.tflogs import drop_noise

    lines = [ln.strip() for ln in drop_noise(stderr).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Traceback", "File \"", "^", "~"))]
    words = _EXCEPTION_NAME.sub("", lines[-1]).strip() if lines else ""
    return words or "no output"


def plain_reason(error: BaseException) -> str:
    """Why reading a file failed, in words about the file (no exception class names).

    Example:
        >>> plain_reason(UnicodeDecodeError("utf-8", b"a\\xff", 1, 2, "invalid start byte"))
        'a text field in it is not valid UTF-8 (byte 0xff at offset 1 of the field)'
    """
    for kinds, words in _REASONS:
        if isinstance(error, kinds):
            return words(error)
    return "its tables point outside the file or hold values no TFLite writer produces"


_REASONS = (
    (UnicodeDecodeError, lambda e: f"a text field in it is not valid UTF-8 (byte 0x{e.object[e.start]:02x} at "
                                   f"offset {e.start} of the field)"),
    (json.JSONDecodeError, lambda e: f"a JSON field in it is malformed ({e.msg} at line {e.lineno} column {e.colno})"),
    ((struct.error, IndexError), lambda e: "a table or vector in it points past the end of the file"),
    (OverflowError, lambda e: "a field in it holds a number out of its type's range"),
    (MemoryError, lambda e: "reading it ran out of memory (its tables claim sizes far beyond the file)"),
    (RecursionError, lambda e: "reading it ran out of stack (its tables nest without end)"),
)


def limit_memory(extra: int) -> None:
    """Cap this process's address space at what it holds plus `extra` bytes (Linux), so a file whose
    tables claim huge sizes ends in MemoryError instead of taking the machine's memory."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            held = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = held + extra if hard == resource.RLIM_INFINITY else min(hard, held + extra)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass  # not Linux: the parent's timeout still bounds the child


def child_main(path: str, work: Callable[[bytes], dict]) -> int:
    """The child's side: read `path`, cap memory, print `work(data)` or {"error": ...} as one line.
    Import what `work` needs before calling this (the cap is set after the imports)."""
    p = Path(path)
    try:
        data = p.read_bytes()
        limit_memory(CHILD_MEMORY_BYTES + 8 * len(data))
        out = work(data)
    except OSError as e:
        out = {"error": f"cannot read {p}: {e.strerror or e}"}
    except TfkitError as e:
        out = {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - any reader failure on untrusted bytes (MemoryError too) is the file's
        traceback.print_exc()  # for --verbose readers of the child's stderr; the user gets the words below
        out = {"error": f"{p} is a corrupt or hostile TFLite file: {plain_reason(e)}; get a fresh copy or "
                        "convert it again"}
    print(json.dumps(out), flush=True)
    return 0
