"""Optimized int8 weight rounding: each int8 kernel (per-channel or per-tensor scales) rounded so
that the layer's output, not each weight, stays closest to float over the calibration inputs
(GPTQ's error compensation, at 8 bits, with TFLite's own scales; no training).

Round-to-nearest minimizes each weight's own error, not the layer's: the errors of the weights
feeding one output add up, and with inputs that are not zero-mean (every ReLU's output) they add
up to a bias that every later layer carries. For one output channel with kernel w (K inputs),
scale s and calibration inputs x (rows of im2col patches), the output error over the calibration
set is d^T C d, with d = s*q - w and C = E[x x^T]. The inputs are rounded one at a time, and each
rounding error is spread over the inputs not yet rounded through the Cholesky factor of C^-1
(every output channel of a layer at once). A layer whose result is worse than nearest on the
calibration inputs keeps nearest. Scales, zero points, biases and activation ranges stay as the
quantizer made them; only int8 kernel values change. Zero weights stay zero (pruned kernels keep
their sparsity); sparse-format kernels are left as they are.

Measured on the zoo's streaming model (docs/compression_findings.md), int8/float top-1 agreement
over 316 frames of real footage, seeds 0-2: 0.962 / 0.987 / 0.978 with nearest rounding, 0.987 /
0.987 / 0.981 optimized (96 calibration samples; 48 and 192 samples: worst seed 0.984 and 0.981).

Example:
    >>> int8 = convert_keras(model, "int8", calibration=clips)        # doctest: +SKIP
    >>> int8, report = optimize_int8(model, int8, clips)
    >>> report["layers"], report["output_error_ratio"]
"""
from __future__ import annotations

import warnings

import numpy as np

from tfkit.convert.granularity import _FLOAT32, _model, _op_name, _values, _weighted, set_values

ROUNDINGS = ("nearest", "optimized")
MAX_ROWS = 20000  # input rows per layer for C: enough for a stable second moment, bounded memory


def _float_ops(model) -> dict[str, tuple]:
    """{op output name: (op, float kernel)} of the float model's weighted ops."""
    return {name: (op, _values(model, k).astype(np.float64)) for name, (op, k, _) in _weighted(model, _FLOAT32).items()}


def _layer_inputs(float_flatbuffer: bytes, samples: list[dict], ops: dict) -> dict[str, np.ndarray]:
    """{op output name: its input activations over `samples`} from the float model."""
    from ai_edge_litert.interpreter import Interpreter

    from tfkit.convert.selective import _ordered

    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is what we need
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        it = Interpreter(model_content=float_flatbuffer, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    details = it.get_input_details()
    got: dict[str, list] = {name: [] for name in ops}
    for s in samples:
        for d, v in zip(details, _ordered(s, details)):
            it.set_tensor(d["index"], v)
        it.invoke()
        for name, (op, _) in ops.items():
            got[name].append(it.get_tensor(int(op.inputs[0])).astype(np.float64))
    return {name: np.concatenate(v) for name, v in got.items()}


def _patches(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], same: bool) -> np.ndarray:
    """(N, H, W, C) -> (rows, kh*kw, C): every input window a kernel sees (im2col)."""
    n, h, w, _ = x.shape
    sh, sw = stride
    if same:
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    cols = [x[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] for i in range(kh) for j in range(kw)]
    return np.stack(cols, axis=3).reshape(n * oh * ow, kh * kw, x.shape[-1])


def _rows(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= MAX_ROWS else x[rng.choice(len(x), MAX_ROWS, replace=False)]


def _moments(kind: str, op, kernel: np.ndarray, x: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """(kernel as (O, K), second moments: (K, K) shared by every output, or (O, K, K))."""
    if kind == "FULLY_CONNECTED":
        rows = _rows(x.reshape(-1, kernel.shape[1]), rng)
        return kernel, rows.T @ rows / len(rows)
    o = op.builtinOptions
    p = _rows(_patches(x, kernel.shape[1], kernel.shape[2], (o.strideH, o.strideW), o.padding == 0), rng)
    if kind == "CONV_2D":  # kernel (O, kh, kw, I), patches flattened in the same (kh, kw, I) order
        rows = p.reshape(len(p), -1)
        return kernel.reshape(kernel.shape[0], -1), rows.T @ rows / len(rows)
    # DEPTHWISE_CONV_2D: kernel (1, kh, kw, C*mult); output channel c reads input channel c // mult
    per_input = np.einsum("rkc,rlc->ckl", p, p) / len(p)
    mult = kernel.shape[3] // per_input.shape[0]
    return kernel.reshape(-1, kernel.shape[3]).T, np.repeat(per_input, mult, axis=0)


def _objective(d: np.ndarray, c: np.ndarray) -> float:
    return float(np.sum(d * (d @ c if c.ndim == 2 else np.einsum("ok,okl->ol", d, c))))


def _compensated(w: np.ndarray, scale: np.ndarray, c: np.ndarray, damp: float = 0.01) -> tuple[np.ndarray, float, float]:
    """Error-compensating rounding (GPTQ's order: one input at a time, each rounding error spread
    over the inputs not yet rounded through the inverse second moment). Returns like `_greedy`."""
    s = scale[:, None]
    nearest = np.clip(np.round(w / s), -127, 127)
    before = _objective(nearest * s - w, c)
    pruned = w == 0  # zeros stay zeros (pruned kernels keep their sparsity)
    shared = c.ndim == 2
    cs = c[None] if shared else c
    eye = np.eye(c.shape[-1])
    upper = []
    for m in cs:
        h = m + damp * max(float(np.mean(np.diag(m))), 1e-12) * eye
        upper.append(np.linalg.cholesky(np.linalg.inv(h)).T)
    u = np.stack(upper)
    work = w.copy()
    q = np.empty_like(w)
    for i in range(w.shape[1]):
        q[:, i] = np.where(pruned[:, i], 0.0, np.clip(np.round(work[:, i] / scale), -127, 127))
        diag = u[:, i, i]
        err = (work[:, i] - q[:, i] * scale) / diag
        if i + 1 < w.shape[1]:
            work[:, i + 1:] -= err[:, None] * u[:, i, i + 1:]
    after = _objective(q * s - w, c)
    if after > before:  # never worse than nearest on the calibration inputs
        return nearest.astype(np.int8), before, before
    return q.astype(np.int8), before, after


def optimize_rounding(int8_flatbuffer: bytes, float_flatbuffer: bytes, samples: list[dict], *,
                      max_samples: int = 96, seed: int = 0) -> tuple[bytes, dict]:
    """`int8_flatbuffer` with each int8 kernel re-rounded against the float model's
    kernels and input activations over `samples` (dicts by input name, as `repair.calibrate`
    returns them; `max_samples` of them, evenly spaced). `float_flatbuffer` is the calibrated float model the
    int8 one was quantized from (same op names). Returns (flatbuffer, report): "layers" (re-rounded),
    "weights_changed" (fraction), "output_error_ratio" (calibration output error after / before,
    summed over layers) and "skipped" {op: why}."""
    from tensorflow.lite.tools import flatbuffer_utils

    qmodel = _model(int8_flatbuffer)
    floats = _float_ops(_model(float_flatbuffer))
    skipped, todo = {}, {}
    for name, (op, kernel_index, _) in _weighted(qmodel).items():
        kind = _op_name(qmodel, op)
        t = qmodel.subgraphs[0].tensors[kernel_index]
        zero = np.asarray(t.quantization.zeroPoint if t.quantization.zeroPoint is not None else 0)
        why = ("no float op of this name" if name not in floats else
               "sparse kernel" if t.sparsity is not None else
               "asymmetric kernel (zero point not 0)" if np.any(zero) else
               "only CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED" if kind not in
               ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") else
               "dilated" if kind != "FULLY_CONNECTED" and (op.builtinOptions.dilationHFactor,
                                                          op.builtinOptions.dilationWFactor) != (1, 1) else
               "quantized along another axis" if len(t.quantization.scale) > 1 and int(
                   t.quantization.quantizedDimension or 0) != (3 if kind == "DEPTHWISE_CONV_2D" else 0) else None)
        if why:
            skipped[name] = why
        else:
            todo[name] = (op, kernel_index, kind)
    use = [samples[i] for i in np.unique(np.linspace(0, len(samples) - 1, max(1, max_samples)).astype(int))]
    inputs = _layer_inputs(float_flatbuffer, use, {n: floats[n] for n in todo})
    rng = np.random.default_rng(seed)
    changed = total = 0
    before = after = 0.0
    for name, (op, kernel_index, kind) in todo.items():
        t = qmodel.subgraphs[0].tensors[kernel_index]
        kernel = floats[name][1]
        nearest = _values(qmodel, kernel_index)
        if kernel.shape != nearest.shape:
            skipped[name] = "kernel shape differs from the float model's"
            continue
        w, c = _moments(kind, op, kernel, inputs[name], rng)
        scale = np.asarray(t.quantization.scale, np.float64)
        q0 = nearest.reshape(-1, nearest.shape[3]).T if kind == "DEPTHWISE_CONV_2D" else nearest.reshape(len(w), -1)
        if np.mean(np.abs(np.round(w / scale[:, None]) - q0) > 1) > 0.01:
            skipped[name] = "int8 kernel is not the float kernel's rounding (different folding)"
            continue
        q, b, a = _compensated(w, scale, c)
        before, after = before + b, after + a
        changed, total = changed + int(np.sum(q != q0)), total + q.size
        out = q.T.reshape(nearest.shape) if kind == "DEPTHWISE_CONV_2D" else q.reshape(nearest.shape)
        set_values(qmodel, kernel_index, out)
    report = {"rounding": "optimized", "layers": len(todo) - sum(n in skipped for n in todo),
              "weights_changed": changed / total if total else 0.0,
              "output_error_ratio": after / before if before > 0 else 1.0,
              "samples": len(use), "skipped": skipped}
    return bytes(flatbuffer_utils.convert_object_to_bytearray(qmodel)), report


def optimize_int8(model, flatbuffer: bytes, calibration, *, calibrated: tuple | None = None) -> tuple[bytes, dict]:
    """`flatbuffer` (post-training int8 of `model`, e.g. `convert_keras(model, "int8", ...)`)
    re-rounded against `model` calibrated on `calibration` ((1, ...) arrays or dicts by input
    name, as convert_keras takes them): one more calibration pass (or `calibrated`, what
    `repair.calibrate(model, calibration)` returned), then `optimize_rounding`."""
    from tfkit.convert.repair import calibrate

    float_flatbuffer, samples = calibrated or calibrate(model, list(calibration))
    return optimize_rounding(flatbuffer, float_flatbuffer, samples)
