"""Run a TFLite flatbuffer on the host (ai-edge-litert) and compare it with its Keras source.

Example:
    >>> report = check_parity(keras_model, flatbuffer, clips, "int8")  # doctest: +SKIP
    >>> report.top1_agreement
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from tfkit.convert.variants import VARIANTS
from tfkit.errors import ConversionError, ParityError, UsageError


class TFLiteModel:
    """A single-signature TFLite model on the host; float in, float out, whatever its I/O dtype."""

    def __init__(self, flatbuffer: bytes, *, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self.flatbuffer = flatbuffer
        try:
            self.interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ConversionError(f"the converted model does not load in LiteRT: {e}") from e
        self.input = self.interpreter.get_input_details()[0]
        self.output = self._logits_output()

    def _logits_output(self) -> dict:
        """The `logits` output (a model with an early exit also has `exit_logits`)."""
        outputs = self.interpreter.get_output_details()
        signatures = self.interpreter.get_signature_list()
        if len(outputs) > 1 and len(signatures) == 1:
            runner = self.interpreter.get_signature_runner()
            named = runner.get_output_details().get("logits")
            if named is not None:
                return next(d for d in outputs if d["index"] == named["index"])
        return outputs[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: float (1, ...) -> float logits (1, classes)."""
        self.interpreter.set_tensor(self.input["index"], _to_dtype(x, self.input))
        self.interpreter.invoke()
        return _to_float(self.interpreter.get_tensor(self.output["index"]), self.output)

    @functools.cached_property
    def _graph_ops(self) -> list[dict]:
        """The model's own ops; the default XNNPACK delegate would fold them into DELEGATE nodes."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        plain = Interpreter(model_content=self.flatbuffer,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
        return plain._get_ops_details()

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op["op_name"] for op in self._graph_ops).items()))

    def xnnpack_partitions(self) -> int:
        """How many pieces XNNPACK (the default CPU delegate) cut the graph into: each DELEGATE node
        is one; every extra piece costs a hand-over to the builtin kernels on each inference."""
        return sum(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())

    def float_activation_count(self) -> int:
        """Float tensors computed by ops (weights excluded): non-zero in "int8" means float islands."""
        produced = {o for op in self._graph_ops for o in op["outputs"]}
        return sum(1 for t in self.interpreter.get_tensor_details()
                   if t["dtype"] == np.float32 and t["index"] in produced)


@dataclass(frozen=True)
class ParityReport:
    precision: str
    clips: int
    max_abs_logit_diff: float
    top1_agreement: float
    threshold: str
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def check_parity(keras_model, flatbuffer: bytes, clips: np.ndarray, precision: str, *,
                 raise_on_fail: bool = True, **thresholds) -> ParityReport:
    """Compare Keras and TFLite logits on float `clips` (N, ...) against the precision's bar
    (override with max_abs_logit_diff= / min_top1_agreement=)."""
    tfl = TFLiteModel(flatbuffer)
    ref = np.concatenate([first_output(keras_model(c[None], training=False)) for c in clips])
    got = np.concatenate([tfl(c[None]) for c in clips])
    return compare_logits(ref, got, precision, raise_on_fail=raise_on_fail, **thresholds)


def first_output(outputs) -> np.ndarray:
    """A Keras model's logits: its only output, or the first (`logits`) of several."""
    return np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)


def compare_logits(ref: np.ndarray, got: np.ndarray, precision: str, *, raise_on_fail: bool = True,
                   what: str = "Keras source", **thresholds) -> ParityReport:
    """Judge (N, classes) logits `got` against the reference `ref` by the precision's parity bar."""
    variant = VARIANTS.get(precision)
    max_abs_bar = thresholds.get("max_abs_logit_diff", variant.max_abs_logit_diff)
    top1_bar = thresholds.get("min_top1_agreement", variant.min_top1_agreement)
    max_abs = float(np.max(np.abs(ref - got)))
    agree = float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))
    checks = []
    if max_abs_bar is not None:
        checks.append((max_abs <= max_abs_bar, f"max|dlogit| {max_abs:.2e} <= {max_abs_bar:g}"))
    if top1_bar is not None:
        checks.append((agree >= top1_bar, f"top-1 agreement {agree:.3f} >= {top1_bar:g}"))
    passed = all(ok for ok, _ in checks)
    report = ParityReport(precision, len(ref), max_abs, agree, "; ".join(t for _, t in checks), passed)
    if raise_on_fail and not passed:
        failed = "; ".join(t for ok, t in checks if not ok)
        raise ParityError(
            f"{precision} model fails parity with its {what} on {len(ref)} clips: not ({failed}). "
            "Calibrate with more/representative clips, or use a float precision.")
    return report


def _to_dtype(x: np.ndarray, detail: dict) -> np.ndarray:
    """Quantize float `x` for an integer tensor (its scale/zero point), or cast for a float one."""
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])
    return x.astype(detail["dtype"])


def _to_float(x: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        scale, zero = detail["quantization"]
        return (x.astype(np.float32) - zero) * scale
    return x.astype(np.float32)


def state_quantization(flatbuffer: bytes) -> list[dict]:
    """Each state's input and output quantization (scale, zero point) in a streaming model; where
    they differ, feeding the raw output back would silently drift, so runners must requantize."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    ins, outs = runner.get_input_details(), runner.get_output_details()
    rows = []
    for name, d in sorted(ins.items()):
        if name == "frame":
            continue
        o = outs[name.removesuffix("_in") + "_out"]
        qi, qo = tuple(float(v) for v in d["quantization"]), tuple(float(v) for v in o["quantization"])
        rows.append({"state": name.removesuffix("_in"), "dtype": np.dtype(d["dtype"]).name, "input": qi,
                     "output": qo, "same": qi == qo})
    return rows


class StreamRunner:
    """A streaming model on the host: `step(frame)` feeds one frame, keeps the state tensors
    between calls (each `<s>_out` fed back as `<s>_in`; integer states are dequantized with the
    output's parameters and requantized with the input's, which differ after int8 calibration).

    Example:
        >>> runner = StreamRunner(flatbuffer)            # doctest: +SKIP
        >>> logits = [runner.step(f) for f in frames]    # doctest: +SKIP
    """

    def __init__(self, flatbuffer: bytes, *, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner()
        except (ValueError, RuntimeError) as e:
            raise ConversionError(f"not a loadable streaming model: {e}") from e
        self.inputs, self.outputs = self.runner.get_input_details(), self.runner.get_output_details()
        if "frame" not in self.inputs or "logits" not in self.outputs:
            raise UsageError(f"not a tfkit streaming model: its signature has inputs {sorted(self.inputs)} and "
                             f"outputs {sorted(self.outputs)}; expected 'frame' and 'logits' plus '<state>_in/_out'")
        self.feedback = {name: name.removesuffix("_in") + "_out" for name in self.inputs if name != "frame"}
        self.reset()

    def reset(self, states: dict[str, np.ndarray] | None = None) -> None:
        """Zero state (a new stream), or the given float states {"<s>_in": array}, checked by name and shape."""
        self.states = {name: np.zeros(d["shape"], np.float32) for name, d in self.inputs.items() if name != "frame"}
        for name, value in (states or {}).items():
            if name not in self.states:
                raise UsageError(f"unknown state tensor {name!r}; this model's states are {sorted(self.states)}")
            self._check(name, np.asarray(value))
            self.states[name] = np.asarray(value, np.float32)

    def _check(self, name: str, x: np.ndarray) -> None:
        want = tuple(int(d) for d in self.inputs[name]["shape"])
        if tuple(x.shape) != want:
            raise UsageError(f"stream input {name!r} has shape {tuple(x.shape)}, the model expects {want}")

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One float frame (H, W, 3) or (1, H, W, 3) -> float logits (classes,)."""
        frame = np.asarray(frame, np.float32)
        frame = frame[None] if frame.ndim == 3 else frame
        self._check("frame", frame)
        feed = {name: _to_dtype(x, self.inputs[name]) for name, x in {"frame": frame, **self.states}.items()}
        result = self.runner(**feed)
        self.states = {name: _to_float(result[o], self.outputs[o]) for name, o in self.feedback.items()}
        return _to_float(result["logits"], self.outputs["logits"])[0]


def run_stream_tflite(flatbuffer: bytes, frames: np.ndarray, *, threads: int = 2) -> np.ndarray:
    """Run a streaming model frame by frame from zero state (see `StreamRunner`); returns
    (T, num_classes) float logits."""
    runner = StreamRunner(flatbuffer, threads=threads)
    return np.stack([runner.step(frame) for frame in frames])
