"""Stream mode of runner.py: a streaming model run frame by frame with its state fed back.

Each step is what an app does per camera frame: set the frame and the states, invoke, read the
outputs, and carry each state output into its input for the next frame. Integer states are
requantized where the output's (scale, zero point) differ from the input's: dequantized with the
output's parameters, quantized with the input's, in the same float32 arithmetic as tfkit's host
streaming runner (tfkit.convert.parity.StreamRunner), so on-device accuracy can equal host accuracy.

Pairing follows the tfkit metadata's stream layout (`read_tfkit_metadata`, a struct reader of
the .tflite's `tfkit` entry: boards have no flatbuffers package) when the model carries one (frame_input,
logits_output, states "<name>_in" -> "<name>_out"); otherwise the names, by tfkit.bench.timing's
rules: an input pairs with the output of the same name or of its name with "_in" -> "_out"; the
frame is the input named in FRAME_INPUT_NAMES, else the one input without a partner.

With clips (N, T, H, W, 3) each clip is streamed from zero state (float 0.0, quantized: the zero
point, as the host does) and scored by its logits after the last frame. Without clips the frames
are seeded, drifting random pictures. Per-frame latency is the whole step; with --fps a step over
1000/fps ms is a missed deadline. Stdlib + numpy, Python 3.8 grammar; never imports tfkit.

Example:
    >>> stream, logits = run(interpreter, metadata, clips=(x, y), prepare=prepare, dequantize=deq,
    ...                      stats=latency_stats, warmup=5, frames=50, fps=15.0, seed=0)  # doctest: +SKIP
"""
import json
import mmap
import struct
import time

try:
    import numpy as np
except ImportError:  # runner.py reports a board without numpy as JSON (runtime_missing)
    np = None

FRAME_INPUT_NAMES = ("frame", "image")  # as tfkit.bench.timing: tfkit's streaming models, MoViNet


class StreamError(Exception):
    """A model or eval set the stream mode cannot run; runner.py reports it with `kind`."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


def read_tfkit_metadata(model_path):
    """The .tflite's `tfkit` metadata entry (labels, normalization, state layout) or None, read with
    struct from an mmap (no flatbuffers package on boards); a damaged entry gives {"error": ...}."""
    def u32(pos):
        return struct.unpack_from("<I", data, pos)[0]

    def field(table, slot):  # position of a table's field (None when absent)
        vtable = table - struct.unpack_from("<i", data, table)[0]
        present = 4 + 2 * slot < struct.unpack_from("<H", data, vtable)[0]
        offset = struct.unpack_from("<H", data, vtable + 4 + 2 * slot)[0] if present else 0
        return table + offset if offset else None

    def vector(pos):  # (length, position of element 0) of the vector a field points at
        start = pos + u32(pos)
        if not 0 <= start <= len(data) - 4 or u32(start) > len(data):
            raise ValueError(f"vector at byte {start} runs past the file")
        return u32(start), start + 4

    try:
        with open(model_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            root = u32(0)
            count, first = vector(field(root, 6)) if field(root, 6) else (0, 0)  # Model.metadata
            for entry in (first + 4 * i + u32(first + 4 * i) for i in range(count)):
                length, start = vector(field(entry, 0))
                if data[start:start + length] == b"tfkit":
                    buffers, at = vector(field(root, 4))  # Model.buffers
                    index = u32(field(entry, 1)) if field(entry, 1) else 0
                    if index >= buffers:
                        raise ValueError(f"it points at buffer {index} of {buffers}")
                    length, start = vector(field(at + 4 * index + u32(at + 4 * index), 0))
                    return json.loads(bytes(data[start:start + length]).decode("utf-8"))
    except (OSError, ValueError, TypeError, struct.error, RecursionError) as e:  # ValueError: empty file, bad JSON
        return {"error": f"unreadable tfkit metadata: {type(e).__name__}: {e}"}
    return None


def _strip_in(name):
    return name[:-3] if name.endswith("_in") else name  # noqa: FURB188 - Python 3.8 strings lack that method


def signature_details(interpreter):
    """({input name: detail}, {output name: detail}) by signature names where the model has a
    signature (tensor names from a SavedModel are 'serving_default_frame:0'), else tensor names."""
    if interpreter.get_signature_list():
        runner = interpreter.get_signature_runner()
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        del runner  # a live signature runner makes its interpreter's invoke() refuse to run
        return dict(inputs), dict(outputs)
    return ({d["name"]: d for d in interpreter.get_input_details()},
            {d["name"]: d for d in interpreter.get_output_details()})


def pair(inputs, outputs, metadata):
    """(frame input, logits output, {state input: state output}, what decided it)."""
    layout = (metadata or {}).get("stream") if isinstance(metadata, dict) else None
    if layout:
        states = {s["name"] + "_in": s["name"] + "_out" for s in layout.get("states", [])}
        frame, logits, how = layout.get("frame_input"), layout.get("logits_output"), "tfkit metadata"
        missing = [n for n in [frame, *states] if n not in inputs] + [n for n in [logits, *states.values()]
                                                                       if n not in outputs]
        if missing:
            raise StreamError("stream_unsupported", f"the tfkit metadata names tensors the model lacks: {missing}; "
                              f"inputs {sorted(inputs)}, outputs {sorted(outputs)}")
        return frame, logits, states, how
    states = {}
    for name in inputs:
        for candidate in (name, _strip_in(name) + "_out"):
            if candidate in outputs:
                states[name] = candidate
                break
    named = [n for n in inputs if n in FRAME_INPUT_NAMES]
    options = named or [n for n in inputs if n not in states]
    if len(options) != 1:
        raise StreamError("stream_unsupported", f"cannot tell the frame input among {sorted(inputs)}: name it one of "
                          f"{list(FRAME_INPUT_NAMES)}, or write tfkit metadata with a stream layout")
    frame = options[0]
    states.pop(frame, None)
    if not states:
        raise StreamError("stream_unsupported", f"no state inputs pair with outputs (inputs {sorted(inputs)}, outputs "
                          f"{sorted(outputs)}): --stream needs '<s>_in' -> '<s>_out' (or same-name) states")
    heads = [n for n in outputs if n not in states.values()]
    logits = "logits" if "logits" in heads else (heads[0] if len(heads) == 1 else None)
    if logits is None:
        raise StreamError("stream_unsupported", f"cannot tell the logits among the outputs {sorted(heads)}")
    return frame, logits, states, "names"


def quantize(values, detail):
    """Float32 values into an input's dtype, as tfkit's host runner does (round, clip)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    if not scale:  # a plain integer tensor (a frame counter, an index): no quantization to apply
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return np.clip(np.round(values / scale + zero), info.min, info.max).astype(dtype)


def carrier(src, dst):
    """(function carrying a state output into its input, whether it requantizes)."""
    same_dtype = np.dtype(src["dtype"]) == np.dtype(dst["dtype"])
    if same_dtype and tuple(src["quantization"]) == tuple(dst["quantization"]):
        return (lambda v: v), False  # get_tensor returned a copy; (q - z) * s / s + z rounds back to q
    if np.dtype(src["dtype"]).kind == "f" and np.dtype(dst["dtype"]).kind == "f":
        return (lambda v: v.astype(dst["dtype"])), False
    if np.dtype(src["dtype"]).kind == "f":
        return (lambda v: quantize(v, dst)), True
    scale, zero = src["quantization"]
    return (lambda v: quantize((v.astype(np.float32) - zero) * scale, dst)), True


def drifting_frames(count, shape, seed):
    """`count` uint8 frames of `shape`: a seeded random scene that drifts, plus per-frame noise
    (consecutive frames correlate like video, as tfkit.bench.timing's frames)."""
    rng = np.random.default_rng(seed)
    scene = rng.random(shape, dtype=np.float32)
    out = np.empty((count,) + tuple(shape), np.uint8)
    for i in range(count):
        scene = np.clip(scene + rng.normal(0, 0.05, shape).astype(np.float32), 0, 1)
        out[i] = np.round(np.clip(scene + rng.normal(0, 0.02, shape).astype(np.float32), 0, 1) * 255)
    return out


def run(interpreter, metadata, clips, prepare, dequantize, stats, warmup, frames, fps, seed):
    """Stream the eval clips (or `warmup + frames` seeded frames); returns (the result's "stream"
    block, (N, classes) logits after each clip's last frame or None without clips).

    `prepare(uint8 frame (H, W, 3), detail)` -> the batch-1 input (runner.to_model_input);
    `dequantize(array, detail)` -> float32; `stats(times_ms)` -> runner.latency_stats."""
    inputs, outputs = signature_details(interpreter)
    frame_name, logits_name, states, paired_by = pair(inputs, outputs, metadata)
    frame = inputs[frame_name]
    shape = [int(s) for s in frame["shape"]]
    carry, requantized = {}, []
    for name, out in states.items():
        carry[name], changes = carrier(outputs[out], inputs[name])
        if changes:
            requantized.append(_strip_in(name))
    zeros = {name: quantize(np.zeros(inputs[name]["shape"], np.float32), inputs[name]) for name in states}
    if clips is not None:
        x = clips[0]
        if x.ndim != 5 or shape[0] != 1 or list(x.shape[2:]) != shape[1:]:
            raise StreamError("eval_data", f"stream eval needs clips (N, T, H, W, C) of frames {shape[1:]}; got "
                              f"{list(x.shape)} for the frame input {frame_name!r} {shape}")
        videos = list(x)
    else:
        videos = [drifting_frames(warmup + frames, shape[1:], seed)]
    out_index = {name: d["index"] for name, d in outputs.items()}
    state_index = {name: inputs[name]["index"] for name in states}
    times, last_logits, steps = [], [], 0
    start = time.perf_counter()
    for video in videos:
        values = dict(zeros)  # a new video starts from zero state
        got = None
        for picture in video:
            fed = prepare(picture, frame)
            t0 = time.perf_counter()
            interpreter.set_tensor(frame["index"], fed)
            for name, value in values.items():
                interpreter.set_tensor(state_index[name], value)
            interpreter.invoke()
            got = {name: interpreter.get_tensor(index) for name, index in out_index.items()}
            values = {name: carry[name](got[out]) for name, out in states.items()}
            elapsed = (time.perf_counter() - t0) * 1000.0
            if steps >= warmup:  # the first `warmup` steps (over all clips) warm the caches, untimed
                times.append(elapsed)
            steps += 1
        last_logits.append(dequantize(got[logits_name], outputs[logits_name]).reshape(-1))
    total_ms = (time.perf_counter() - start) * 1000.0
    if not times:
        raise StreamError("usage", f"no frames were timed: the {steps} frames streamed are all --warmup ({warmup}); "
                          "lower --warmup or give more clips")
    deadline = 1000.0 / fps if fps else None
    block = {"frames": len(times), "latency_ms": stats(times), "fps": fps, "deadline_ms": deadline,
             "missed_deadlines": sum(t > deadline for t in times) if deadline else None,
             "clips": len(videos) if clips is not None else None, "accuracy": None,
             "requantized_states": sorted(requantized), "frame_input": frame_name, "logits_output": logits_name,
             "states": len(states), "paired_by": paired_by, "warmup_frames": steps - len(times),
             "ms_per_clip": total_ms / len(videos)}
    if clips is None:
        return block, None
    logits = np.stack(last_logits)
    labels = clips[1]
    if len(labels) and 0 <= int(labels.min()) and int(labels.max()) < logits.shape[1]:
        block["accuracy"] = float((logits.argmax(axis=1) == labels).mean())
    return block, logits


def stream_eval(logits, labels, normalization, predictions_out, block):
    """The result's "eval" block of a streamed run: each clip scored by its logits after its last
    frame (as tfkit's host streaming evaluation), so BenchResult.accuracy reads it like any other."""
    return dict(score(logits, labels, output=block["logits_output"], normalization=normalization,
                      ms_per_clip=block["ms_per_clip"], predictions_out=predictions_out), streamed=True)


def score(logits, labels, output, normalization, ms_per_clip, predictions_out):
    """The "eval" block for (N, classes) logits against N labels (runner.py's clip eval uses it too);
    labels outside the classes are an eval_data error, never a silent 0."""
    if int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]:
        raise StreamError("eval_data", f"labels span [{int(labels.min())}, {int(labels.max())}] but the model has "
                          f"{logits.shape[1]} classes")
    predictions = logits.argmax(axis=1)
    correct = int((predictions == labels).sum())
    if predictions_out:
        np.savez(predictions_out, logits=logits, predictions=predictions, labels=labels)
    return {"clips": len(labels), "correct": correct, "accuracy": correct / float(len(labels)),
            "logits_shape": [int(s) for s in logits.shape], "output": str(output),
            "normalization": normalization, "ms_per_clip": ms_per_clip, "predictions_path": predictions_out}
