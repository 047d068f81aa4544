"""What every benchmark device offers, and the options every benchmark run takes.

A device is where runner.py runs: this host (`local`), a board over ssh, a phone over adb. Each
one is a small module registered in `DEVICES` by decorator; all of them build the runner's
command line with `runner_args` so the options mean the same everywhere.

Example:
    >>> from tfkit.bench.devices import DEVICES
    >>> DEVICES.get("local")().run("m.tflite", config=BenchConfig(threads=4), name="m", precision="int8")
"""
from __future__ import annotations

import abc
import enum
import os
from dataclasses import dataclass
from pathlib import Path

from tfkit.errors import UsageError
from tfkit.registry import Registry
from tfkit.types import BenchResult, Normalization, Precision

DEVICES: Registry[type[Device]] = Registry("device")


class Runtime(str, enum.Enum):
    """Which interpreter module the runner uses on the device."""

    AUTO = "auto"  # ai_edge_litert, else tflite_runtime
    LITERT = "litert"
    TFLITE_RUNTIME = "tflite_runtime"  # old boards: tflite-runtime 2.14 with numpy<2


def _enum(kind: type[enum.Enum], value: object, field: str) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise UsageError(f"BenchConfig.{field} is {value!r}; choose one of {allowed}.") from None


@dataclass(frozen=True)
class BenchConfig:
    """How to benchmark: interpreter threads, warm-up and timed runs, eval preprocessing, limits."""

    threads: int = 2
    warmup: int = 5
    runs: int = 50
    normalization: Normalization = Normalization.SYMMETRIC
    runtime: Runtime = Runtime.AUTO
    timeout_s: float = 600.0
    eval_limit: int | None = None  # score only the first K clips of eval_npz

    def __post_init__(self):
        object.__setattr__(self, "normalization", _enum(Normalization, self.normalization, "normalization"))
        object.__setattr__(self, "runtime", _enum(Runtime, self.runtime, "runtime"))
        for field, minimum in (("threads", 1), ("warmup", 0), ("runs", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UsageError(f"BenchConfig.{field} must be an integer >= {minimum}, got {value!r}.")
        if self.eval_limit is not None and (not isinstance(self.eval_limit, int) or self.eval_limit < 1):
            raise UsageError(f"BenchConfig.eval_limit must be None or an integer >= 1, got {self.eval_limit!r}.")
        if not self.timeout_s > 0:
            raise UsageError(f"BenchConfig.timeout_s must be positive, got {self.timeout_s!r}.")


def runner_script() -> Path:
    """Path of runner.py, the entry point each device runs (in place, or from its copy of runner_files())."""
    return Path(__file__).resolve().parent.parent / "board" / "runner.py"


def runner_files() -> list[Path]:
    """Every file a device needs to run runner.py: the script and its `board_*.py` siblings,
    copied together into one folder (they import each other as top-level modules)."""
    folder = runner_script().parent
    return [runner_script(), *sorted(folder.glob("board_*.py"))]


def runner_args(
    model_path: str | os.PathLike,
    *,
    config: BenchConfig,
    eval_npz: str | os.PathLike | None = None,
    json_out: str | os.PathLike | None = None,
    predictions_out: str | os.PathLike | None = None,
) -> list[str]:
    """The runner's command-line options (paths as the device sees them)."""
    args = [
        "--model", os.fspath(model_path),
        "--threads", str(config.threads),
        "--warmup", str(config.warmup),
        "--runs", str(config.runs),
        "--runtime", config.runtime.value,
        "--normalization", config.normalization.value,
    ]
    if eval_npz is not None:
        args += ["--eval", os.fspath(eval_npz)]
        if config.eval_limit is not None:
            args += ["--eval-limit", str(config.eval_limit)]
        if predictions_out is not None:
            args += ["--predictions-out", os.fspath(predictions_out)]
    if json_out is not None:
        args += ["--json-out", os.fspath(json_out)]
    return args


class Device(abc.ABC):
    """Somewhere runner.py can run. Subclasses set `name` and implement `run`."""

    name: str = "device"

    @classmethod
    def from_address(cls, address, entry=None) -> Device:
        """The device for a parsed DeviceAddress and its devices.yaml entry (None for a bare
        address). Kinds that take options (a host, a python path) override this."""
        return cls()

    def fingerprint(self) -> dict:
        """What this device is (CPU, cores, frequencies, kernel, thermal, runtimes), for
        `tfkit devices`; raise an error saying why when the device cannot be reached."""
        return {}

    @abc.abstractmethod
    def run(
        self,
        model_path: str | os.PathLike,
        *,
        eval_npz: str | os.PathLike | None = None,
        config: BenchConfig | None = None,
        name: str | None = None,
        precision: Precision | str = "unknown",
    ) -> BenchResult:
        """Benchmark one .tflite file in a fresh runner process; raise BenchmarkError on failure.

        `name`/`precision` label the result (default: the file's stem and "unknown").
        """
