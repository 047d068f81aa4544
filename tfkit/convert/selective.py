"""Selective int8 quantization: find the layers int8 hurts most (TFLite's QuantizationDebugger)
and keep the worst few in float, with the price of doing so measured.

`layer_error_report` ranks every quantized op by rmse/scale: the root-mean-square error between
the op's float and int8 outputs in units of its int8 step. About 0.29 (= 1/sqrt(12)) is pure
rounding noise; much more means the range is badly chosen for that tensor.
`convert_selective` keeps the worst N (or named) ops in float and reports size, latency (on a
device, this host by default: tfkit.bench.timing), XNNPACK partitions and agreement with the float
model, for full int8 and for the selective model.

Example:
    >>> rows = layer_error_report(model, clips)                   # doctest: +SKIP
    >>> rows[0]["tensor_name"], rows[0]["rmse_over_scale"]
    >>> flatbuffer, report = convert_selective(model, clips, keep_float=2)  # doctest: +SKIP
    >>> report["selective"]["top1_agreement"], report["full_int8"]["top1_agreement"]
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from tfkit.errors import ConversionError, UsageError, first_line

_SERVING_PREFIX = "serving_default_"


def _samples(calibration, input_names: list[str]) -> list[dict[str, np.ndarray]]:
    """Calibration items -> dicts {input name: float32 array (1, ...)}."""
    out = []
    for s in calibration:
        if isinstance(s, dict):
            missing = sorted(set(input_names) - set(s))
            if missing:
                raise UsageError(f"calibration sample lacks input(s) {missing}; the model's inputs are {input_names}")
            out.append({k: np.asarray(s[k], np.float32) for k in input_names})
        elif len(input_names) == 1:
            out.append({input_names[0]: np.asarray(s, np.float32)})
        else:
            raise UsageError(f"the model has inputs {input_names}: give calibration samples as dicts keyed by them")
    if not out:
        raise UsageError("empty calibration set: pass a few representative clips (arrays of shape (1, ...))")
    return out


def _ordered(sample: dict[str, np.ndarray], details: list[dict]) -> list[np.ndarray]:
    """The debugger feeds inputs as a list in interpreter order: match detail names to inputs."""
    out = []
    for d in details:
        name = d["name"].split(":")[0].removeprefix(_SERVING_PREFIX)
        if name not in sample:
            raise ConversionError(f"cannot match model input tensor {d['name']!r} to one of {sorted(sample)}")
        out.append(sample[name])
    return out


def _debugger(model, calibration, denylisted_nodes: Sequence[str] = ()):
    """A QuantizationDebugger on `model` (batch 1) calibrated on `calibration`; returns
    (debugger, samples)."""
    from tfkit._compat.keras import tf
    from tfkit.convert.tflite import _fixed_batch, keras_converter

    T = tf()
    fixed = _fixed_batch(model)
    names = [t.name.split(":")[0] for t in fixed.inputs]
    samples = _samples(calibration, names)
    converter = keras_converter(fixed)
    converter.optimizations = [T.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)  # dicts by name: safe for multi-input
    holder = {}

    def debug_dataset():
        details = holder["debugger"]._quant_interpreter.get_input_details()
        return (_ordered(s, details) for s in samples)

    options = T.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=list(denylisted_nodes) or None, fully_quantize=False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected.*")
            debugger = T.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=debug_dataset, debug_options=options)
    except Exception as e:
        first = first_line(e)
        raise ConversionError(f"quantization debugger could not convert {model.name!r}: {first}") from e
    holder["debugger"] = debugger
    return debugger, samples


def _rows(debugger) -> list[dict]:
    """Per-op rows like QuantizationDebugger.layer_statistics_dump, plus rmse/scale; worst first."""
    interp = debugger._quant_interpreter
    rows = []
    for verify_name, metrics in debugger.layer_statistics.items():
        tensor_name, _ = debugger._get_operand_name_and_index(verify_name)
        tensor_idx = debugger._numeric_verify_op_details[verify_name]["inputs"][0]
        op = interp._get_op_details(debugger._defining_op[tensor_idx])
        q = interp._get_tensor_details(tensor_idx, subgraph_index=0)["quantization_parameters"]
        scale, zero = float(q["scales"][0]), int(q["zero_points"][0])
        mse = float(metrics["mean_squared_error"])
        rows.append({"tensor_name": tensor_name, "op_name": op["op_name"], "op_index": int(op["index"]),
                     "tensor_idx": int(tensor_idx), "num_elements": int(metrics["num_elements"]),
                     "rmse_over_scale": float(np.sqrt(mse) / scale) if scale else float("inf"),
                     "mean_error": float(metrics["mean_error"]), "max_abs_error": float(metrics["max_abs_error"]),
                     "mean_squared_error": mse, "stddev": float(metrics["stddev"]),
                     "scale": scale, "zero_point": zero})
    return sorted(rows, key=lambda r: r["rmse_over_scale"], reverse=True)


def layer_error_report(model, calibration: Iterable, *, precision: str = "int8") -> list[dict]:
    """One row per quantized op of `model`'s int8 conversion, worst (highest rmse/scale) first:
    tensor_name (what `keep_float` takes), op_name, rmse_over_scale, mean_error, max_abs_error,
    mean_squared_error, stddev, scale, zero_point, num_elements.

    `calibration` yields float arrays (1, ...) or, for multi-input models, dicts by input name.

    Example:
        >>> [r["op_name"] for r in layer_error_report(model, clips)[:3]]  # doctest: +SKIP
        ['FULLY_CONNECTED', 'MEAN', 'CONV_2D']
    """
    if precision != "int8":
        raise UsageError(f"layer_error_report supports precision 'int8' only (TFLite's debugger), got {precision!r}")
    debugger, _ = _debugger(model, calibration)
    debugger.run()
    return _rows(debugger)


def _run_all(flatbuffer: bytes, samples: list[dict[str, np.ndarray]]) -> np.ndarray:
    """First output of the model on every sample, as float (N, ...)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfkit.convert.parity import _to_dtype, _to_float

    interp = Interpreter(model_content=flatbuffer, num_threads=2)
    interp.allocate_tensors()
    ins, out = interp.get_input_details(), interp.get_output_details()[0]
    results = []
    for s in samples:
        for d, x in zip(ins, _ordered(s, ins)):
            interp.set_tensor(d["index"], _to_dtype(x, d))
        interp.invoke()
        results.append(_to_float(interp.get_tensor(out["index"]), out))
    return np.concatenate(results)


def _cost(flatbuffer: bytes, samples, reference: np.ndarray, labels, runs: int, device) -> dict:
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.bench.timing import time_tflite
    from tfkit.convert.parity import TFLiteModel

    m = TFLiteModel(flatbuffer)
    got = _run_all(flatbuffer, samples)
    latency = time_tflite(flatbuffer, device, BenchConfig(threads=2, warmup=3, runs=runs), precision="int8")
    row = {"bytes": len(flatbuffer), "latency_ms": latency,
           "xnnpack_partitions": m.xnnpack_partitions(), "float_activations": m.float_activation_count(),
           "top1_agreement": float(np.mean(np.argmax(got, -1) == np.argmax(reference, -1))),
           "max_abs_logit_diff": float(np.max(np.abs(got - reference))), "ops": m.op_counts()}
    if labels is not None:
        row["accuracy"] = float(np.mean(np.argmax(got, -1) == np.asarray(labels)))
    return row


def float_ops(flatbuffer: bytes) -> list[dict]:
    """Ops of a (partly) quantized model that compute in float: their output tensor is float32
    (QUANTIZE/DEQUANTIZE excluded). Each row: op_name, op_index, tensor_name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = Interpreter(model_content=flatbuffer,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    tensors = {t["index"]: t for t in plain.get_tensor_details()}
    return [{"op_name": op["op_name"], "op_index": int(op["index"]), "tensor_name": tensors[o]["name"]}
            for op in plain._get_ops_details()
            if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
            for o in op["outputs"][:1] if tensors[o]["dtype"] == np.float32]


def convert_selective(model, calibration: Iterable, *, keep_float: int | Sequence[str] = 1,
                      eval_clips: Iterable | None = None, labels: Sequence[int] | None = None,
                      runs: int = 20, device=None) -> tuple[bytes, dict]:
    """int8 conversion of `model` with some ops kept in float: the `keep_float` worst ops of
    `layer_error_report` (an int), or the named output tensors (a list of tensor_name values).

    Returns (selective flatbuffer, report). The report has the debugger rows ("layers"), the ops
    kept in float ("kept_float"), and for "full_int8" and "selective": bytes, latency_ms (p50 of
    `runs` invokes on `device`, a Device or an address; default: this host), xnnpack_partitions, float_activations, top1_agreement and max_abs_logit_diff
    against the float Keras model on `eval_clips` (default: the calibration clips), and accuracy
    when `labels` are given. Both models keep float input/output (the debugger's form).

    Example:
        >>> fb, report = convert_selective(model, clips, keep_float=1)  # doctest: +SKIP
        >>> report["kept_float"], report["selective"]["xnnpack_partitions"]
    """
    from tfkit.bench.timing import timing_device

    device = timing_device(device)  # before the debugger runs: a bad address fails first
    debugger, samples = _debugger(model, calibration)
    debugger.run()
    rows = _rows(debugger)
    known = {r["tensor_name"] for r in rows}
    if isinstance(keep_float, int) and not isinstance(keep_float, bool):
        if not 0 <= keep_float <= len(rows):
            raise UsageError(f"keep_float={keep_float} but the model has {len(rows)} quantized ops; pick 0..{len(rows)}")
        names = [r["tensor_name"] for r in rows[:keep_float]]
    else:
        names = list(keep_float)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"keep_float names {unknown} are not quantized op outputs; take tensor_name values "
                             f"from layer_error_report (worst: {[r['tensor_name'] for r in rows[:3]]})")
    from tfkit._compat.keras import tf

    T = tf()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected.*")
        full = debugger.get_nondebug_quantized_model()
        debugger.options = T.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names or None,
                                                                        fully_quantize=False)
        selective = debugger.get_nondebug_quantized_model()

    fixed_names = [t.name.split(":")[0] for t in model.inputs]
    evals = _samples(eval_clips, fixed_names) if eval_clips is not None else samples
    inputs = [np.concatenate([s[n] for s in evals]) for n in fixed_names]
    reference = model.predict(inputs[0] if len(inputs) == 1 else inputs, batch_size=8, verbose=0)
    reference = np.asarray(reference[0] if isinstance(reference, list) else reference)
    report = {
        "layers": rows,
        "kept_float": [{"tensor_name": n, "op_name": next((r["op_name"] for r in rows if r["tensor_name"] == n), "?")}
                       for n in names],
        "full_int8": _cost(full, evals, reference, labels, runs, device),
        "selective": _cost(selective, evals, reference, labels, runs, device),
    }
    return selective, report
