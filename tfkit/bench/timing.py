"""The one way tfkit times a .tflite model: on a Device (this host by default, a board over ssh
the same way), or a streaming model step by step on this host.

On a device (every caller that compares models: block and layer timing, linear merges, the
convert sweep, selective int8):

- `time_tflite`: the p50 of one model, from the device's runner (a fresh runner process per
  model, so nothing warm or cached is shared between models);
- `time_flatbuffers`: the p50 of each of several models, timed `rounds` times in a shuffled order
  each round, the fastest round kept (other load on a shared host only ever adds time);
- `timing_device` opens `--device` (an address, a devices.yaml name, or a Device) and
  `check_device` fails on a bad one without opening anything, so a config rejects it before work.

Example:
    >>> from tfkit.bench.timing import time_flatbuffers
    >>> time_flatbuffers({"wide": wide_fb, "thin": thin_fb}, "local", rounds=3)  # doctest: +SKIP
    {'wide': 0.41, 'thin': 0.18}

Streaming, on this host (`time_stream`): every model is timed in a fresh Python process (nothing
warm or imported from the caller: no TensorFlow, no other interpreter in memory), on the same
seeded, real-looking frames (a random scene that drifts, plus per-frame noise, made in [0, 1] and
mapped to the model's own input range), in two modes:

- step: what an app does per frame: set the frame and the states, invoke, read every output and
  feed the states back (int8 states requantized when their input and output scales differ);
- invoke: `interpreter.invoke()` alone on fixed inputs (the frame and states the steps reached).

Wall time (time.perf_counter) and CPU time of the invoking thread (time.thread_time; with one
thread XNNPACK computes on it, so on a shared machine it is the compute time minus time lost to
other processes) are medians over the timed frames, after warm-up.

Example:
    >>> from tfkit.bench.timing import TimingConfig, time_stream
    >>> t = time_stream("stream_float32.tflite", TimingConfig(threads=1, input_range=(-1.0, 1.0)))
    >>> t.invoke_ms, t.step_ms  # doctest: +SKIP
    (1.21, 1.30)

The child half of this file (run as a script) needs only numpy and `ai_edge_litert` and never
imports tfkit: everything above it imports tfkit inside the functions.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the child half runs without tfkit
    from tfkit.bench.devices.base import BenchConfig, Device

LOCAL = "local"  # the default device address: this host


# ---------------------------------------------------------------- on a Device (the runner times)


def check_device(address: object, owner: str = "config") -> str:
    """`address` when this tfkit can run on it, else the one UsageError naming `owner`.device and
    the accepted forms; opens nothing (no connection), so configs call it as they are built.

    >>> check_device("local")
    'local'
    """
    from tfkit.errors import UsageError

    if not isinstance(address, str):
        raise UsageError(f"{owner}.device must be a device address such as 'local' or 'ssh:pi@board', "
                         f"got {address!r}")
    if address.strip() == LOCAL:  # no devices.yaml or plug-in lookup for the default
        return address
    from tfkit.bench.devices.kinds import check_runnable, resolve

    try:
        check_runnable(resolve(address))
    except UsageError as e:  # the same error, saying which field held the address
        e.args = (f"{owner}.device: {e}",)
        raise e from None
    return address


def timing_device(device: Device | str | None = None) -> Device:
    """The Device to time on: None is this host, a string is opened by address or devices.yaml
    name (tfkit.bench.devices.kinds.open_device), a Device is itself."""
    if device is None or device == LOCAL:
        from tfkit.bench.devices.local import LocalDevice

        return LocalDevice()
    if isinstance(device, str):
        from tfkit.bench.devices.kinds import open_device

        return open_device(device)
    return device


def device_record(address: str) -> dict:
    """What a step's metrics say about where it timed: {"address": ..., "name": ...} (the name
    of a devices.yaml entry, else None).

    >>> device_record("local")
    {'address': 'local', 'name': None}
    """
    from tfkit.bench.devices.kinds import resolve

    resolved = resolve(address).address if address.strip() != LOCAL else None
    return {"address": str(resolved) if resolved else LOCAL, "name": resolved.name if resolved else None}


def piece_config(runs: int = 100) -> BenchConfig:
    """How a piece of a model (a block, a layer, a pair) is timed: one thread, 10 warm-up runs,
    `runs` timed: a small model's p50 settles only over many runs."""
    from tfkit.bench.devices.base import BenchConfig

    return BenchConfig(threads=1, warmup=10, runs=runs)


def time_tflite(model: str | os.PathLike | bytes, device: Device | str | None = None,
                config: BenchConfig | None = None, *, name: str | None = None, precision: str = "unknown") -> float:
    """p50 latency (ms) of one .tflite file or flatbuffer on `device` (default: this host), from
    the device's runner with `config` (default: `piece_config()`); raises BenchmarkError with the
    runner's own words when the model cannot be run there."""
    if isinstance(model, (bytes, bytearray)):
        with tempfile.TemporaryDirectory(prefix="tfkit_timing_") as tmp:
            path = Path(tmp) / f"{name or 'model'}.tflite"
            path.write_bytes(model)
            return time_tflite(path, device, config, name=name, precision=precision)
    result = timing_device(device).run(model, config=config or piece_config(), name=name or Path(model).stem,
                                       precision=precision)
    return float(result.latency_ms.p50)


def time_flatbuffers(models: dict[str, bytes], device: Device | str | None = None, config: BenchConfig | None = None,
                     *, rounds: int = 1, precision: str = "float32") -> dict[str, float]:
    """p50 (ms) of each flatbuffer on `device` (default: this host), timed `rounds` times in a
    shuffled order each round, `config.cooldown_s` of rest between runner processes; the fastest
    round is kept (other load on a shared host only ever adds time, so the minimum is the reading
    least disturbed). Unlike `tfkit.bench.benchmark` (a report's median over rounds), this is for
    choosing between models: which is faster, and by how much."""
    import numpy as np

    from tfkit.errors import UsageError

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise UsageError(f"rounds must be an integer >= 1, got {rounds!r}")
    device, config = timing_device(device), config or piece_config()
    keys = list(models)
    readings: dict[str, list[float]] = {key: [] for key in keys}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="tfkit_timing_") as tmp:
        paths = []
        for i, key in enumerate(keys):  # written once: a remote device caches each by its sha256
            paths.append(Path(tmp) / f"model{i}.tflite")
            paths[-1].write_bytes(models[key])
        rest = config.cooldown_s
        for r in range(rounds):
            for n, i in enumerate(rng.permutation(len(keys))):
                if rest and (r or n):
                    time.sleep(rest)
                readings[keys[i]].append(time_tflite(paths[i], device, config, name=f"model{i}", precision=precision))
    return {key: float(min(values)) for key, values in readings.items()}


# ---------------------------------------------------------------- a streaming model, step by step, on this host

# The frame input of a streaming model, when its name is not given: Model Garden's MoViNet calls
# it "image", tfkit's streaming models "frame". Any other input with a matching output is a state.
FRAME_INPUT_NAMES = ("frame", "image")


@dataclass(frozen=True)
class TimingConfig:
    """How to time: threads, timed frames after `warmup`, the frames' seed and the model's input
    range (the frames are made in [0, 1] and mapped to it; (-1, 1) for tfkit's symmetric input)."""

    threads: int = 1
    frames: int = 50
    warmup: int = 10
    seed: int = 0
    input_range: tuple[float, float] = (0.0, 1.0)
    frame_input: str | None = None  # default: the one input named in FRAME_INPUT_NAMES, or without an output
    timeout_s: float = 600.0


@dataclass(frozen=True)
class StreamTiming:
    """Medians in ms per frame; p10/p90 beside them. `frames_sha256` is the digest of the [0, 1]
    frames before mapping, so two results with the same digest saw the same pictures."""

    step_ms: float
    step_p10_p90: tuple[float, float]
    step_cpu_ms: float | None
    invoke_ms: float
    invoke_p10_p90: tuple[float, float]
    invoke_cpu_ms: float | None
    init_ms: float
    first_step_ms: float
    frame_input: str
    states: int
    state_values: int
    frames: int
    warmup: int
    threads: int
    frames_sha256: str
    pid: int
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def time_stream(model: str | os.PathLike | bytes, config: TimingConfig | None = None) -> StreamTiming:
    """Time one streaming (or plain) .tflite model in a fresh process; raises BenchmarkError with
    the child's own words when it cannot be loaded or run."""
    from tfkit.errors import BenchmarkError

    config = config or TimingConfig()
    with tempfile.TemporaryDirectory(prefix="tfkit_timing_") as tmp:
        if isinstance(model, (bytes, bytearray)):
            path = Path(tmp) / "model.tflite"
            path.write_bytes(model)
        else:
            path = Path(model)
        argv = [sys.executable, str(Path(__file__).resolve()), str(path), json.dumps(asdict(config))]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=config.timeout_s, env=env,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            raise BenchmarkError(f"timing {path.name} took over {config.timeout_s:.0f} s; "
                                 f"pass a larger TimingConfig.timeout_s or fewer frames") from e
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    reply = json.loads(lines[-1]) if lines else {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    if proc.returncode != 0 or "error" in reply:
        raise BenchmarkError(f"timing {path.name} failed (exit {proc.returncode}): {reply.get('error')}")
    reply["step_p10_p90"] = tuple(reply["step_p10_p90"])
    reply["invoke_p10_p90"] = tuple(reply["invoke_p10_p90"])
    return StreamTiming(**reply, config=asdict(config))


def gmacs_per_s(macs: int, ms: float) -> float:
    """Achieved throughput: MACs of one invoke over its time, in 1e9 MACs per second."""
    return macs / (ms * 1e-3) / 1e9


# ---------------------------------------------------------------- the child (numpy + ai_edge_litert only)


def real_looking_frames(n: int, shape, seed: int):
    """`n` frames of `shape` in [0, 1], float32: a random scene that drifts, plus per-frame noise
    (consecutive frames correlate like video; all-zero frames would not exercise the arithmetic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scene = rng.random(shape, dtype=np.float32)
    frames = np.empty((n, *shape), np.float32)
    for i in range(n):
        scene = np.clip(scene + rng.normal(0, 0.05, shape).astype(np.float32), 0, 1)
        frames[i] = np.clip(scene + rng.normal(0, 0.02, shape).astype(np.float32), 0, 1)
    return frames


def _board_stream():
    """The board's stream module (tfkit/bench/board/board_stream.py, stdlib + numpy), loaded by path:
    the child quantizes frames and carries states exactly as the runner does on a device."""
    import importlib.util

    path = Path(__file__).resolve().parent / "board" / "board_stream.py"
    spec = importlib.util.spec_from_file_location("tfkit_board_stream", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pairs(inputs: dict, outputs: dict, frame_input: str | None) -> tuple[str, dict[str, str]]:
    """(frame input name, {state input: state output})."""
    match = {}
    for name in inputs:
        for candidate in (name, name.removesuffix("_in") + "_out"):
            if candidate in outputs:
                match[name] = candidate
                break
    if frame_input is None:
        named = [n for n in inputs if n in FRAME_INPUT_NAMES]
        free = [n for n in inputs if n not in match]
        options = named or free
        if len(options) != 1:
            raise ValueError(f"cannot tell the frame input among {sorted(inputs)}; pass TimingConfig.frame_input")
        frame_input = options[0]
    if frame_input not in inputs:
        raise ValueError(f"no input named {frame_input!r}; inputs: {sorted(inputs)}")
    match.pop(frame_input, None)
    return frame_input, match


def _measure(path: str, cfg: dict) -> dict:
    import statistics

    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    threads = cfg["threads"]
    t0 = time.perf_counter()
    interp = Interpreter(model_path=path, num_threads=threads)
    if interp.get_signature_list():
        runner = interp.get_signature_runner()
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        del runner  # a live signature runner makes its interpreter's invoke() refuse to run
    else:
        interp.allocate_tensors()
        inputs = {d["name"]: d for d in interp.get_input_details()}
        outputs = {d["name"]: d for d in interp.get_output_details()}
    interp.allocate_tensors()
    init_ms = (time.perf_counter() - t0) * 1e3
    frame_name, states = _pairs(inputs, outputs, cfg["frame_input"])
    frame = inputs[frame_name]
    n = cfg["warmup"] + cfg["frames"]
    unit = real_looking_frames(n, tuple(int(d) for d in frame["shape"]), cfg["seed"])
    low, high = cfg["input_range"]
    board = _board_stream()
    feed = board.quantize(low + (high - low) * unit, frame)
    carry = {i: board.carrier(outputs[o], inputs[i])[0] for i, o in states.items()}
    # every state starts at float 0.0, quantized (an int8 state's zero point), as on a device
    values = {i: board.quantize(np.zeros(inputs[i]["shape"], np.float32), inputs[i]) for i in states}
    out_index = {name: d["index"] for name, d in outputs.items()}

    step, step_cpu = [], []
    for k in range(n):
        w, c = time.perf_counter(), time.thread_time()
        interp.set_tensor(frame["index"], feed[k])
        for name, value in values.items():
            interp.set_tensor(inputs[name]["index"], value)
        interp.invoke()
        got = {name: interp.get_tensor(index) for name, index in out_index.items()}
        values = {i: carry[i](got[o]) for i, o in states.items()}
        step_cpu.append((time.thread_time() - c) * 1e3)
        step.append((time.perf_counter() - w) * 1e3)
    bare, bare_cpu = [], []
    for _ in range(n):  # inputs stay as the last step set them (its frame, the states before it)
        w, c = time.perf_counter(), time.thread_time()
        interp.invoke()
        bare_cpu.append((time.thread_time() - c) * 1e3)
        bare.append((time.perf_counter() - w) * 1e3)
    warm = cfg["warmup"]
    med = lambda xs: round(statistics.median(xs[warm:]), 4)
    spread = lambda xs: [round(float(np.percentile(xs[warm:], p)), 4) for p in (10, 90)]
    return {
        "step_ms": med(step), "step_p10_p90": spread(step), "step_cpu_ms": med(step_cpu) if threads == 1 else None,
        "invoke_ms": med(bare), "invoke_p10_p90": spread(bare),
        "invoke_cpu_ms": med(bare_cpu) if threads == 1 else None,
        "init_ms": round(init_ms, 2), "first_step_ms": round(step[0], 3), "frame_input": frame_name,
        "states": len(states), "state_values": int(sum(int(np.prod(inputs[i]["shape"])) for i in states)),
        "frames": cfg["frames"], "warmup": warm, "threads": threads,
        "frames_sha256": hashlib.sha256(unit.tobytes()).hexdigest(), "pid": os.getpid(),
    }


def _child(argv: list[str]) -> int:
    try:
        print(json.dumps(_measure(argv[0], json.loads(argv[1]))), flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - the parent turns this line into a BenchmarkError
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # run as a file: its folder's modules must not shadow any others
    sys.exit(_child(sys.argv[1:]))
