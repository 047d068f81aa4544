"""Run a TFLite flatbuffer on the host (ai-edge-litert) and compare it with its Keras source.

Example:
    >>> report = check_parity(keras_model, flatbuffer, clips, "int8")  # doctest: +SKIP
    >>> report.top1_agreement
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from tfkit.convert.variants import VARIANTS
from tfkit.errors import ConversionError, ParityError


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
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: float (1, ...) -> float logits (1, classes)."""
        d = self.input
        if np.issubdtype(d["dtype"], np.integer):
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(d["index"], x.astype(d["dtype"]))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def _graph_ops(self) -> list[dict]:
        """The model's own ops; the default XNNPACK delegate would fold them into DELEGATE nodes."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        plain = Interpreter(model_content=self.flatbuffer,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
        return plain._get_ops_details()

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op["op_name"] for op in self._graph_ops()).items()))

    def float_activation_count(self) -> int:
        """Float tensors computed by ops (weights excluded): non-zero in "int8" means float islands."""
        produced = {o for op in self._graph_ops() for o in op["outputs"]}
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
    variant = VARIANTS.get(precision)
    max_abs_bar = thresholds.get("max_abs_logit_diff", variant.max_abs_logit_diff)
    top1_bar = thresholds.get("min_top1_agreement", variant.min_top1_agreement)
    tfl = TFLiteModel(flatbuffer)
    ref = np.concatenate([np.asarray(keras_model(c[None], training=False)) for c in clips])
    got = np.concatenate([tfl(c[None]) for c in clips])
    max_abs = float(np.max(np.abs(ref - got)))
    agree = float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))
    checks = []
    if max_abs_bar is not None:
        checks.append((max_abs <= max_abs_bar, f"max|dlogit| {max_abs:.2e} <= {max_abs_bar:g}"))
    if top1_bar is not None:
        checks.append((agree >= top1_bar, f"top-1 agreement {agree:.3f} >= {top1_bar:g}"))
    passed = all(ok for ok, _ in checks)
    report = ParityReport(precision, len(clips), max_abs, agree, "; ".join(t for _, t in checks), passed)
    if raise_on_fail and not passed:
        failed = "; ".join(t for ok, t in checks if not ok)
        raise ParityError(
            f"{precision} model fails parity with its Keras source on {len(clips)} clips: not ({failed}). "
            "Calibrate with more/representative clips, or use a float precision.")
    return report


def run_stream_tflite(flatbuffer: bytes, frames: np.ndarray, *, threads: int = 2) -> np.ndarray:
    """Run a float streaming model frame by frame through its signature, feeding each `<s>_out`
    back as `<s>_in`; returns (T, num_classes) logits."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
    runner = interpreter.get_signature_runner()
    details = runner.get_input_details()
    states = {name: np.zeros(d["shape"], d["dtype"]) for name, d in details.items() if name != "frame"}
    out = []
    for frame in frames:
        result = runner(frame=frame[None].astype(np.float32), **states)
        states = {name: result[name.removesuffix("_in") + "_out"] for name in states}
        out.append(result["logits"][0])
    return np.stack(out)
