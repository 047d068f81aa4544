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
import math
import os
import re
from collections.abc import Sequence
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


class RunnerDelegate(str, enum.Enum):
    """What runs the model's ops in the runner (`--delegate`); a failed load is an error, never a
    silent CPU fallback."""

    DEFAULT = "default"  # the runtime's own CPU path (XNNPACK where the runtime applies it itself)
    NONE = "none"  # the plain reference kernels, no delegate at all
    XNNPACK = "xnnpack"
    GPU = "gpu"
    NNAPI = "nnapi"
    EDGETPU = "edgetpu"


_CORE_LIST = re.compile(r"\d+(,\d+)*")


def cores_from_mask(mask: str) -> tuple[int, ...]:
    """The core ids a taskset hex mask names: "f0" -> (4, 5, 6, 7).

    Example:
        >>> cores_from_mask("0x5")
        (0, 2)
    """
    bits = int(mask, 16)
    return tuple(i for i in range(bits.bit_length()) if bits >> i & 1)


def _cpu_affinity(value: object) -> tuple[int, ...] | None:
    """None, core ids (a sequence, or text "0,2,3" as the runner takes it) -> a sorted tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.replace(" ", "")
        if not _CORE_LIST.fullmatch(text):
            raise UsageError(f"BenchConfig.cpu_affinity is {value!r}; give core ids such as \"0,2,3\" "
                             "(a taskset mask from devices.yaml goes through cores_from_mask).")
        value = [int(c) for c in text.split(",")]
    if (not isinstance(value, Sequence) or not value
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value)
            or len(set(value)) != len(value)):
        raise UsageError(f"BenchConfig.cpu_affinity must be distinct core ids >= 0, e.g. (0, 2, 3); got {value!r}.")
    return tuple(sorted(value))


def _enum(kind: type[enum.Enum], value: object, field: str) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise UsageError(f"BenchConfig.{field} is {value!r}; choose one of {allowed}.") from None


@dataclass(frozen=True)
class BenchConfig:
    """How to benchmark: interpreter threads, warm-up and timed runs, eval preprocessing, limits,
    the delegate and CPU cores, stream mode, and the measurement plan (rounds, cool-down).

    `runs` is the total number of timed runs per model; `benchmark` splits them over `rounds`
    (each round a fresh runner process per model, models interleaved) and sleeps `cooldown_s`
    between consecutive runner processes.

    Example:
        >>> BenchConfig(runs=60, rounds=3, cooldown_s=5, delegate="xnnpack", cpu_affinity="4,5")
    """

    threads: int = 2
    warmup: int = 5
    runs: int = 50
    normalization: Normalization = Normalization.SYMMETRIC
    runtime: Runtime = Runtime.AUTO
    timeout_s: float = 600.0
    eval_limit: int | None = None  # score only the first K clips of eval_npz
    delegate: RunnerDelegate = RunnerDelegate.DEFAULT
    delegate_library: str | None = None  # an external delegate .so (edgetpu: libedgetpu.so.1 by default)
    cpu_affinity: tuple[int, ...] | None = None  # core ids the runner pins itself to
    stream: bool = False  # feed the model's state outputs back in, frame by frame
    fps: float | None = None  # with stream: frame deadline 1000/fps ms, misses counted
    rounds: int = 1
    cooldown_s: float = 0.0
    benchmark_binary: str | None = None  # adb phones: LiteRT's benchmark_model, a file on this host

    def __post_init__(self):
        object.__setattr__(self, "normalization", _enum(Normalization, self.normalization, "normalization"))
        object.__setattr__(self, "runtime", _enum(Runtime, self.runtime, "runtime"))
        object.__setattr__(self, "delegate", _enum(RunnerDelegate, self.delegate, "delegate"))
        object.__setattr__(self, "cpu_affinity", _cpu_affinity(self.cpu_affinity))
        for field, minimum in (("threads", 1), ("warmup", 0), ("runs", 1), ("rounds", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UsageError(f"BenchConfig.{field} must be an integer >= {minimum}, got {value!r}.")
        if self.rounds > self.runs:
            raise UsageError(f"BenchConfig.rounds ({self.rounds}) is more than runs ({self.runs}): each round needs "
                             "at least one timed run. Raise runs or lower rounds.")
        if self.eval_limit is not None and (not isinstance(self.eval_limit, int) or self.eval_limit < 1):
            raise UsageError(f"BenchConfig.eval_limit must be None or an integer >= 1, got {self.eval_limit!r}.")
        if not _positive(self.timeout_s):
            raise UsageError(f"BenchConfig.timeout_s must be positive, got {self.timeout_s!r}.")
        if not (_positive(self.cooldown_s) or self.cooldown_s == 0):
            raise UsageError(f"BenchConfig.cooldown_s must be a number of seconds >= 0, got {self.cooldown_s!r}.")
        if not isinstance(self.stream, bool):
            raise UsageError(f"BenchConfig.stream must be True or False, got {self.stream!r}.")
        if self.fps is not None and not _positive(self.fps):
            raise UsageError(f"BenchConfig.fps must be None or a positive number, got {self.fps!r}.")
        if self.fps is not None and not self.stream:
            raise UsageError("BenchConfig.fps sets stream mode's frame deadline; it needs stream=True.")
        if self.benchmark_binary is not None and (not isinstance(self.benchmark_binary, str)
                                                  or not self.benchmark_binary.strip()):
            raise UsageError(f"BenchConfig.benchmark_binary must be the path of LiteRT's benchmark_model on this "
                             f"host, got {self.benchmark_binary!r}.")
        if self.delegate_library is not None:
            if not isinstance(self.delegate_library, str) or not self.delegate_library.strip():
                raise UsageError(f"BenchConfig.delegate_library must be the path of a delegate .so, got "
                                 f"{self.delegate_library!r}.")
            if self.delegate in (RunnerDelegate.DEFAULT, RunnerDelegate.NONE):
                raise UsageError(f"BenchConfig.delegate_library is set but delegate is {self.delegate.value!r}; "
                                 "name the delegate it provides (e.g. delegate='edgetpu').")

    def runs_per_round(self) -> list[int]:
        """How `runs` timed runs split over the rounds (earlier rounds take the remainder)."""
        share, extra = divmod(self.runs, self.rounds)
        return [share + (1 if r < extra else 0) for r in range(self.rounds)]


def _positive(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and value > 0)


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
    """The runner's command-line options (paths as the device sees them). The delegate, affinity
    and stream options are passed only when set, so an older runner still takes the defaults.
    `rounds` and `cooldown_s` are the host's plan and never reach the runner."""
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
    if config.delegate != RunnerDelegate.DEFAULT:
        args += ["--delegate", config.delegate.value]
    if config.delegate_library is not None:
        args += ["--delegate-library", config.delegate_library]
    if config.cpu_affinity is not None:
        args += ["--cpu-affinity", ",".join(str(c) for c in config.cpu_affinity)]
    if config.stream:
        args.append("--stream")
        if config.fps is not None:
            args += ["--fps", str(float(config.fps))]
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
