"""int8 you can debug and repair: per-layer int8 error on every int8 conversion, and `--repair auto`.

One calibration of the model (TFLite's calibrator) serves every variant: TFLite's `mlir_quantize`
turns the calibrated model into full int8 with per-channel or per-tensor kernel scales, int16
activations, or with named ops kept in float (selective quantization), without calibrating again.

`layer_errors` runs TFLite's QuantizationDebugger on that calibrated model: one row per quantized
op, with the debugger's rmse/scale (error in units of the op's int8 step; ~0.29 is pure rounding)
and `channel_rel_error`, the op's int8 output error relative to each output channel's own float
RMS, averaged over channels. The second catches what rmse/scale cannot:
an outlier channel that stretches a per-tensor range until every other channel rounds to zero
(rmse/scale stays ~0.3 there, since the error is measured in units of the stretched step).

`repair_int8` measures the int8 accuracy drop against the float model on the CALIBRATION clips
(the caller's test/validation clips are never passed in), then searches the fewest ops to keep in
float (0, 1, 2, ...), worst `channel_rel_error` first; for each count it tries per-channel and
per-tensor kernel scales and, when only per-channel is within budget, per-layer granularity
("mixed", tfkit.convert.granularity: the most layers per-tensor, safest first, that keep the drop
within budget); it keeps the smallest file within budget (per-channel parameters cost 24 B per
output channel). Keeping an op's output in float keeps the
op and the ops that read that tensor in float (a tensor crushed by its range must not be
re-quantized by its consumer). int16 activations (whole model: TFLite's int16x8 quantizer has no
per-op form) are the last resort. The chosen variant's changes, size and latency (timed on a Device
with tfkit.bench.timing) are reported next to plain int8.

Example:
    >>> flatbuffer, report = repair_int8(model, clips, labels, budget=0.01)  # doctest: +SKIP
    >>> report["chosen"]["kept_float"], report["chosen"]["drop"], report["before"]["drop"]
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np

from tfkit.errors import ConversionError, UsageError, first_line

GRANULARITIES = ("per_tensor", "per_channel")
_FLOOR_KEYS = ("tensor_name", "op_name", "channel_rel_error", "rmse_over_scale", "max_abs_error", "scale")


@contextmanager
def _quiet():
    """TF's calibrator and debugger warn about their own internals: not the user's to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected.*")
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        yield


def calibrate(model, calibration) -> tuple[bytes, list[dict[str, np.ndarray]]]:
    """(TFLite model carrying calibration statistics, the samples as dicts by input name):
    the one expensive pass every variant below shares."""
    from tfkit._compat.keras import tf
    from tfkit.convert.selective import _samples
    from tfkit.convert.tflite import _fixed_batch, keras_converter

    T = tf()
    fixed = _fixed_batch(model)
    samples = _samples(calibration, [t.name.split(":")[0] for t in fixed.inputs])
    converter = keras_converter(fixed)
    converter.optimizations = [T.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # what QuantizationDebugger does
    try:
        with _quiet():
            return converter.convert(), samples
    except Exception as e:
        first = first_line(e)
        raise ConversionError(f"int8 calibration of {model.name!r} failed: {first}") from e


def quantize(calibrated: bytes, *, granularity: str = "per_channel", keep_float: Sequence[str] = (),
             debug: bool = False) -> bytes:
    """A calibrated model (from `calibrate`) -> an int8 flatbuffer with int8 input/output (what
    `--precision int8` writes). `keep_float` names op output tensors whose ops stay float; `debug`
    adds the debugger's NumericVerify ops (with float input/output)."""
    from tensorflow.lite.python import convert

    from tfkit._compat.keras import tf

    if granularity not in GRANULARITIES:
        raise UsageError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    T = tf()
    io = T.float32 if debug else T.int8
    try:
        with _quiet():
            return convert.mlir_quantize(calibrated, disable_per_channel=granularity == "per_tensor",
                                         fully_quantize=not debug, input_data_type=io, output_data_type=io,
                                         enable_numeric_verify=debug, denylisted_nodes=list(keep_float) or None)
    except Exception as e:
        first = first_line(e)
        raise ConversionError(f"int8 quantization ({granularity}, {len(keep_float)} op(s) float) failed: {first}") from e


def _channel_rel_error(float_out, quant_out, scale, zero_point) -> float:
    f = np.asarray(float_out, np.float64)
    d = (np.asarray(quant_out, np.float64) - zero_point) * scale - f
    axes = tuple(range(f.ndim - 1))
    rms_err = np.sqrt(np.mean(d ** 2, axis=axes))
    rms = np.sqrt(np.mean(f ** 2, axis=axes))
    # A channel with almost no signal compares against 1/1000 of a step, so a channel that rounds
    # to zero scores ~1 (lost) rather than hiding under the stretched step.
    return float(np.mean(rms_err / (rms + 1e-3 * scale + 1e-12)))


def layer_errors(calibrated: bytes, samples: list[dict[str, np.ndarray]], *, granularity: str = "per_channel",
                 max_samples: int = 8) -> list[dict]:
    """Per-op int8 error rows (QuantizationDebugger on `max_samples` samples), worst
    `channel_rel_error` first; each row also lists `consumers`: output tensor names of the ops
    that read this op's output (what `repair_int8` keeps float together with it)."""
    from tfkit._compat.keras import tf
    from tfkit.convert.selective import _ordered, _rows

    T = tf()
    debug_model = quantize(calibrated, granularity=granularity, debug=True)
    options = T.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"channel_rel_error": _channel_rel_error})
    holder = {}
    use = samples[:max(1, max_samples)]

    def dataset():
        details = holder["d"]._quant_interpreter.get_input_details()
        return (_ordered(s, details) for s in use)

    with _quiet():
        debugger = T.lite.experimental.QuantizationDebugger(quant_debug_model_content=debug_model,
                                                           debug_dataset=dataset, debug_options=options)
        holder["d"] = debugger
        debugger.run()
    rows = _rows(debugger)
    by_name = dict(debugger.layer_statistics)
    interp = debugger._quant_interpreter
    ops = interp._get_ops_details()
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    # quantized ops' outputs, by the debug model's tensor name -> the name denylisting takes
    quantized = {names[r["tensor_idx"]]: r["tensor_name"] for r in rows}
    for r, (verify, stats) in zip(rows, _matching(debugger, rows, by_name)):
        r["channel_rel_error"] = float(stats.get("channel_rel_error", float("nan")))
        r["consumers"] = _consumers(r["tensor_idx"], ops, names, quantized)
    return sorted(rows, key=lambda r: (-np.nan_to_num(r["channel_rel_error"], nan=-1.0), -r["rmse_over_scale"]))


# Ops that only move values (their output keeps the input's int8 scale): a tensor kept in float is
# followed through them to the ops that compute with it.
_MOVES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "SLICE", "STRIDED_SLICE", "GATHER", "PAD",
                    "SPLIT", "SPLIT_V", "MAX_POOL_2D", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH"})


def _consumers(tensor_idx: int, ops: list[dict], names: dict, quantized: dict) -> list[str]:
    """Denylist names of the quantized ops reading `tensor_idx`, through value-moving ops."""
    found, todo, seen = set(), [tensor_idx], set()
    while todo:
        t = todo.pop()
        seen.add(t)
        for op in ops:
            if t in op["inputs"]:
                for o in op["outputs"][:1]:
                    if names[o] in quantized:
                        found.add(quantized[names[o]])
                        if op["op_name"] in _MOVES and o not in seen:
                            todo.append(o)
    return sorted(found)


def _matching(debugger, rows, by_name):
    """(verify name, stats) for each row of `_rows`, by tensor name."""
    stats = {debugger._get_operand_name_and_index(v)[0]: (v, s) for v, s in by_name.items()}
    return [stats[r["tensor_name"]] for r in rows]


def summary(rows: list[dict], top: int | None = None) -> list[dict]:
    """The manifest's form of `layer_errors` rows: a few fields each, rounded."""
    return [{k: (round(r[k], 6) if isinstance(r[k], float) else r[k]) for k in _FLOOR_KEYS if k in r}
            for r in (rows if top is None else rows[:top])]


def record_layer_errors(model, calibration, *, granularity: str = "per_channel", max_samples: int = 8,
                        strict: bool = False, calibrated: tuple | None = None) -> dict:
    """What every int8 conversion writes to its manifest: {"granularity", "samples", "metric",
    "layers"}. A diagnostic: unless `strict`, a model the debugger cannot instrument gets
    {"skipped": the reason} instead of failing a conversion that itself succeeded. `calibrated`:
    what `calibrate(model, calibration)` returned, when the caller already has it."""
    try:
        calibrated, samples = calibrated or calibrate(model, calibration)
        rows = layer_errors(calibrated, samples, granularity=granularity, max_samples=max_samples)
    except Exception as e:
        if strict:
            raise
        first = first_line(e)
        return {"skipped": f"the quantization debugger could not run on this model: {first}"}
    return {"granularity": granularity, "samples": min(len(samples), max_samples), "metric": "channel_rel_error",
            "layers": summary(rows)}


def _outputs(flatbuffer: bytes, samples) -> np.ndarray:
    from tfkit.convert.selective import _run_all

    return _run_all(flatbuffer, samples)


def mean_and_se(d: np.ndarray) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-clip differences, e.g. float-correct minus int8-correct."""
    d = np.asarray(d, np.float64)
    return float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def _score(got: np.ndarray, reference: np.ndarray, labels) -> tuple[float, float]:
    """(the int8 drop, its standard error over the clips): float accuracy minus int8 accuracy on
    labelled clips (paired per clip), else the fraction of clips whose top-1 class changed (an
    upper bound on any accuracy drop)."""
    if labels is None:
        d = (np.argmax(got, -1) != np.argmax(reference, -1)).astype(np.float64)
    else:
        y = np.asarray(labels)
        d = (np.argmax(reference, -1) == y).astype(np.float64) - (np.argmax(got, -1) == y)
    return mean_and_se(d)


def repair_int8(model, calibration, labels: Sequence[int] | None = None, *, budget: float = 0.01,
                max_float: int = 3, device=None, runs: int = 20, debug_samples: int = 8,
                rounding: str = "optimized", log=None) -> tuple[bytes, dict]:
    """int8 within `budget` of float on the calibration clips, with the fewest ops in float.

    `calibration`: float clips (N, ...) (or a list of (1, ...) arrays / dicts); the drop is judged
    on these and only these, with `labels` (accuracy drop) or without (top-1 changes). Every int8
    variant is judged as it would be written: with `rounding="optimized"` its kernels re-rounded
    (tfkit.convert.rounding; each trial records its "rounding"). Returns the
    chosen flatbuffer and a report: "before" (plain per-channel int8), "chosen", "trials" (every
    variant tried, in order), "layers" (per-op errors, worst first), "within_budget", and
    "cost" (bytes and p50 latency of the chosen model vs plain int8 on `device`).

    Example:
        >>> fb, rep = repair_int8(model, clips, labels, budget=0.01, max_float=2)  # doctest: +SKIP
        >>> rep["chosen"]["granularity"], rep["chosen"]["kept_float"]
    """
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.bench.timing import time_tflite, timing_device

    say = log or (lambda msg: None)
    if budget < 0 or max_float < 0:
        raise UsageError("repair budget and max_float must be >= 0")
    device = timing_device(device)
    items = [np.asarray(x)[None] for x in calibration] if isinstance(calibration, np.ndarray) else list(calibration)
    if labels is not None and len(labels) != len(items):
        raise UsageError(f"{len(labels)} labels for {len(items)} calibration clips")
    calibrated, samples = calibrate(model, items)
    names = list(samples[0])
    inputs = [np.concatenate([s[n] for s in samples]) for n in names]
    reference = model.predict(inputs[0] if len(inputs) == 1 else inputs, batch_size=8, verbose=0)
    reference = np.asarray(reference[0] if isinstance(reference, list) else reference)
    rows = {g: layer_errors(calibrated, samples, granularity=g, max_samples=debug_samples) for g in GRANULARITIES}
    trials, built, nearest = [], {}, {}

    def rounded(fb: bytes, t: dict) -> bytes:
        """`fb` as the convert step writes int8: kernels re-rounded; nearest (with the why) where that cannot run."""
        t["rounding"] = "nearest"
        if rounding != "optimized" or t["activations"] != "int8":
            return fb
        from tfkit.convert.rounding import optimize_rounding

        try:
            fb, _ = optimize_rounding(fb, calibrated, samples)
        except Exception as e:  # noqa: BLE001  (the variant stands as TFLite rounded it, with the reason)
            t["rounding_why"] = first_line(e)
            return fb
        t["rounding"] = "optimized"
        return fb

    def trial(k: int, granularity: str, activations: str = "int8") -> dict:
        keep = [r["tensor_name"] for r in rows[granularity][:k]]
        float_ops = sorted({n for r in rows[granularity][:k] for n in (r["tensor_name"], *r["consumers"])})
        t = {"granularity": granularity, "activations": activations, "kept_float": keep, "float_ops": float_ops}
        try:
            if activations == "int16":  # whole-model only: TFLite's int16x8 quantizer calibrates anew
                from tfkit.convert.tflite import convert_keras

                fb = convert_keras(model, "int16x8", calibration=items, per_channel=granularity == "per_channel")
            else:
                fb = quantize(calibrated, granularity=granularity, keep_float=float_ops)
        except ConversionError as e:  # e.g. an op without an int16 kernel: a refused variant, not a crash
            t.update(bytes=None, drop=None, refused=str(e))
            trials.append(t)
            say(f"[repair] {granularity}, {activations} activations: refused ({e})")
            return t
        return measured(t, fb, f"{k} kept float, {granularity}, {activations} activations")

    def measured(t: dict, fb: bytes, what: str, final: bool = False) -> dict:
        """Score `fb` (re-rounded first unless `final`) on the calibration clips; record the trial."""
        if not final:
            nearest[len(trials)], fb = fb, rounded(fb, t)
        drop, se = _score(_outputs(fb, samples), reference, labels)
        t.update(bytes=len(fb), drop=drop, drop_se=se)
        built[len(trials)] = fb
        trials.append(t)
        say(f"[repair] {what}: drop {t['drop']:.4f}, {len(fb)} B")
        return t

    def mixed(per_channel: dict) -> dict | None:
        """Per-layer granularity with `per_channel`'s float ops: the most layers per-tensor (safest
        first, by `granularity.per_tensor_error`) whose drop stays within budget (binary search on
        the count; each count measured). None when no layer can go per-tensor."""
        from tfkit.convert.granularity import mix, per_tensor_error

        i = trials.index(per_channel)
        pt = quantize(calibrated, granularity="per_tensor", keep_float=per_channel["float_ops"])
        order = list(per_tensor_error(nearest[i], pt))  # safest first, judged on TFLite's own rounding
        pt_trial = {"activations": "int8"}
        pt_rounded = rounded(pt, pt_trial)
        same = pt_trial["rounding"] == per_channel["rounding"]  # else both as TFLite rounded them
        pc_file, pt_file = (built[i], pt_rounded) if same else (nearest[i], pt)
        lo, hi, best = 1, len(order) - 1, None
        while lo <= hi:
            n = (lo + hi) // 2
            t = {**{k: per_channel[k] for k in ("activations", "kept_float", "float_ops")}, "granularity": "mixed",
                 "per_tensor_layers": order[:n], "per_channel_layers": order[n:]}
            # Each kernel is re-rounded against its own layer's float inputs: re-rounded files mix as they are.
            t["rounding"] = per_channel["rounding"] if same else "nearest"
            measured(t, mix(pc_file, pt_file, order[:n]), f"{len(t['kept_float'])} kept float, "
                     f"{n}/{len(order)} layers per-tensor", final=True)
            if ok(t):
                best, lo = t, n + 1
            else:
                hi = n - 1
        return best

    def ok(t: dict) -> bool:
        return t["drop"] is not None and t["drop"] <= budget

    # Fewest ops in float first; for each count the smallest file within budget (per-tensor scales
    # where they are safe). int16 activations come last: TFLite applies them to the whole model only,
    # and every op then runs int16 kernels (XNNPACK has none: slower, and fewer delegates take it).
    before = trial(0, "per_channel")
    chosen = None
    for k in range(max_float + 1):
        if k and k > len(rows["per_channel"]):
            break
        tried = [before if k == 0 else trial(k, "per_channel"), trial(k, "per_tensor")]
        if ok(tried[0]) and not ok(tried[1]) and tried[1]["drop"] is not None:
            tried.append(mixed(tried[0]))  # per-tensor where it is safe, per-channel where it is not
        candidates = [t for t in tried if t is not None and ok(t)]
        if candidates:
            chosen = min(candidates, key=lambda t: (t["bytes"], t["drop"]))
            break
    if chosen is None and ok(trial(0, "per_channel", "int16")):
        chosen = trials[-1]
    within = chosen is not None
    if not within:  # nothing met the budget: the variant with the smallest drop, said so
        chosen = min((t for t in trials if t["drop"] is not None), key=lambda t: (t["drop"], t["bytes"]))
    flatbuffer = built[trials.index(chosen)]
    config = BenchConfig(threads=2, warmup=3, runs=runs)
    cost = {"bytes_before": before["bytes"], "bytes_after": chosen["bytes"],
            "latency_ms_before": time_tflite(built[0], device, config, precision="int8"),
            "latency_ms_after": (time_tflite(flatbuffer, device, config, precision="int16x8" if chosen["activations"] == "int16" else "int8")
                                 if chosen is not before else None)}
    if cost["latency_ms_after"] is None:
        cost["latency_ms_after"] = cost["latency_ms_before"]
    report = {"budget": budget, "measured_on": {"split": "calibration", "clips": len(samples),
                                                "drop": "accuracy" if labels is not None else "top-1 changes"},
              "before": before, "chosen": chosen, "within_budget": within, "trials": trials, "cost": cost,
              "layers": summary(rows["per_tensor" if chosen["granularity"] == "per_tensor" else "per_channel"])}
    warning = resolution_warning(trials, budget, len(samples))
    if warning:
        report["warning"] = warning
        say(f"[repair] warning: {warning}")
    return flatbuffer, report


def resolution_warning(trials: Sequence[dict], budget: float, clips: int) -> str | None:
    """A warning when a variant's drop lies within two standard errors of the budget: which side
    of it that variant landed on, kept or rejected, is then partly chance. None otherwise.

    Example:
        >>> resolution_warning([{"drop": 0.3, "drop_se": 0.04}, {"drop": 0.0, "drop_se": 0.0}], 0.01, 200) is None
        True
    """
    close = [t for t in trials if t.get("drop") is not None and abs(t["drop"] - budget) < 2 * t["drop_se"]]
    if not close:
        return None
    return (f"{len(close)} of {len(trials)} variants tried lie within two standard errors of the budget {budget} "
            f"on {clips} calibration clips (standard error up to {max(t['drop_se'] for t in close):.4f}): whether "
            "they were kept or rejected is partly chance; more calibration clips (a larger train split) make the "
            "choice firmer")
