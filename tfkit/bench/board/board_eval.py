"""Clip evaluation for runner.py's `--eval`: the eval .npz checked and loaded, each uint8 clip turned
into the model's input (normalized, then quantized when the input is), and the logits scored.

Errors are `StreamError(kind, message)` (kinds eval_data / eval_unsupported), which runner.py reports
as its JSON error like its own. Stdlib + numpy, Python 3.8 grammar; never imports tfkit.

Example:
    >>> x, y = load_clips("clips.npz", limit=None)
    >>> block = evaluate(interpreter, "clips.npz", None, "symmetric", None, invoke=timed_invoke)  # doctest: +SKIP
"""
import os
import time

try:
    import numpy as np
except ImportError:  # runner.py reports a board without numpy as JSON (runtime_missing)
    np = None

from board_stream import StreamError, score

# pixel * scale + offset; mirrors tfkit.types.Normalization (duplicated: this file cannot import tfkit)
NORMALIZATIONS = {"unit": (1.0 / 255.0, 0.0), "symmetric": (2.0 / 255.0, -1.0)}
QUANTIZED_INPUT_DTYPES = ("int8", "uint8", "int16")


def load_clips(path, limit):
    if not os.path.isfile(path):
        raise StreamError("eval_data", f"eval file not found on the device: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # np.load would guess pickle and say something misleading
        raise StreamError("eval_data", f"{path} is not an .npz archive (it starts with {magic!r}); save clips "
                          "with numpy.savez(path, x=clips, y=labels)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name in ("x", "y")}
            names = sorted(data.files)
    except Exception as e:  # noqa: BLE001 - a truncated archive fails here
        raise StreamError("eval_data", f"cannot read {path} as .npz: {type(e).__name__}: {e}")
    if len(arrays) != 2:
        raise StreamError("eval_data",
                          f"{path} must hold arrays 'x' (uint8 clips) and 'y' (int labels); it holds {names}")
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.uint8 or x.ndim not in (4, 5):
        raise StreamError("eval_data", "'x' must be uint8 clips (N,T,H,W,C) or frames (N,H,W,C); "
                          f"got {x.dtype} {list(x.shape)}")
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
        raise StreamError("eval_data", f"'y' must be {len(x)} integer labels; got {y.dtype} {list(y.shape)}")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if len(x) == 0:
        raise StreamError("eval_data", f"{path} holds no clips")
    return x, y.astype(np.int64)


def to_model_input(clip, detail, normalization):
    """One uint8 clip -> the model's input tensor (batch 1), normalized then quantized if needed."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if dtype == np.uint8 and not scale:
        return clip[None]  # a raw-pixel model: it normalizes inside
    pixel_scale, offset = NORMALIZATIONS[normalization]
    x = clip.astype(np.float32) * np.float32(pixel_scale) + np.float32(offset)
    if dtype.kind == "f":
        return x[None].astype(dtype)
    if dtype.name in QUANTIZED_INPUT_DTYPES and scale:
        info = np.iinfo(dtype)
        q = np.round(x / np.float32(scale) + np.float32(zero_point))
        return np.clip(q, info.min, info.max).astype(dtype)[None]
    raise StreamError("eval_unsupported", f"cannot feed clips to input {detail.get('name')!r} of dtype "
                      f"{dtype.name} with quantization {(scale, zero_point)}")


def dequantize(output, detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if output.dtype.kind in "iu" and scale:
        return (output.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return output.astype(np.float32)


def evaluate(interpreter, npz_path, limit, normalization, predictions_out, invoke):
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        names = ", ".join(d["name"] for d in inputs)
        raise StreamError("eval_unsupported", f"eval needs a single-input model; this one has {len(inputs)} "
                          f"inputs ({names}). Time it without --eval.")
    x, y = load_clips(npz_path, limit)
    input_detail, output_detail = inputs[0], interpreter.get_output_details()[0]
    want = [int(s) for s in input_detail["shape"]]
    if want[0] != 1 or list(x.shape[1:]) != want[1:]:
        raise StreamError("eval_data", f"clips have shape {list(x.shape[1:])} but the model input "
                          f"{input_detail['name']!r} wants {want} (batch 1)")
    logits = []
    start = time.perf_counter()
    for clip in x:
        interpreter.set_tensor(input_detail["index"], to_model_input(clip, input_detail, normalization))
        invoke(interpreter)
        out = dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)
        if out.ndim > 2 or (out.ndim == 2 and out.shape[0] != 1):
            raise StreamError("eval_unsupported", f"output {output_detail['name']!r} has shape "
                              f"{list(out.shape)}; scoring needs (1, classes)")
        logits.append(out.reshape(-1))
    eval_ms = (time.perf_counter() - start) * 1000.0
    return score(np.stack(logits), y, output=output_detail["name"], normalization=normalization,
                 ms_per_clip=eval_ms / len(y), predictions_out=predictions_out)
