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
import signal
import subprocess
import sys
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
        result = json.loads([ln for ln in done.stdout.decode("utf-8").splitlines() if ln.startswith("{")][-1])
    except (UnicodeDecodeError, ValueError, IndexError):
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ModelFileError(f"reading {what} failed (exit {done.returncode}): {tail[0]}") from None
    if done.returncode != 0 or not isinstance(result, dict) or "error" in result:
        error = result.get("error") if isinstance(result, dict) else None
        raise ModelFileError(str(error or f"reading {what} failed (exit {done.returncode})"))
    return result


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
    except (MemoryError, RecursionError) as e:
        out = {"error": f"{p} is a corrupt or hostile TFLite file: reading it ran out of "
                        f"{'memory' if isinstance(e, MemoryError) else 'stack'}"}
    print(json.dumps(out), flush=True)
    return 0
