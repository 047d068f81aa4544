"""The `local` device: runner.py in a fresh child process of this host.

A new process per model means a clean peak-RSS reading and no caching between models. `python`
picks the interpreter that runs it, e.g. a numpy<2 venv holding tflite-runtime to check what an
old board would do.

Example:
    >>> LocalDevice().run("out/05-convert/model_int8.tflite", name="tsm", precision="int8").latency_ms.p50
    0.47
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tfkit.bench.devices.base import DEVICES, BenchConfig, Device, runner_args, runner_script
from tfkit.bench.parse import parse_runner_output
from tfkit.errors import BenchmarkError, ToolNotFoundError
from tfkit.types import BenchResult, Precision


@DEVICES.register("local")
class LocalDevice(Device):
    """Runs runner.py with `python` (default: this interpreter) as a child process, never a shell."""

    name = "local"

    def __init__(self, python: str | os.PathLike | None = None):
        self.python = os.fspath(python) if python is not None else sys.executable

    @classmethod
    def from_address(cls, address, entry=None) -> LocalDevice:
        return cls(python=entry.python if entry is not None else None)

    def fingerprint(self) -> dict:
        from tfkit.bench.devices.fingerprint import host_fingerprint

        return host_fingerprint(python=self.python)

    def run(
        self,
        model_path: str | os.PathLike,
        *,
        eval_npz: str | os.PathLike | None = None,
        config: BenchConfig | None = None,
        name: str | None = None,
        precision: Precision | str = "unknown",
    ) -> BenchResult:
        config = config or BenchConfig()
        name = name or Path(model_path).stem
        command = [self.python, str(runner_script()), *runner_args(model_path, config=config, eval_npz=eval_npz)]
        try:
            proc = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",  # device output is untrusted; never fail on bad bytes
                timeout=config.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            last = stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise BenchmarkError(
                f"{name} on {self.name}: the runner did not finish within {config.timeout_s:g} s and was "
                f"killed (last words: {last[0]}). Raise BenchConfig.timeout_s or lower runs."
            ) from None
        except OSError as e:
            raise ToolNotFoundError(f"Cannot start the benchmark interpreter {self.python!r}: {e}.") from e
        return parse_runner_output(
            proc.stdout, proc.stderr, proc.returncode, name=name, precision=precision, device=self.name
        )
