"""A stand-in Device whose "latency" is a fixed formula of the flatbuffer it is given, so tests of
what tfkit decides from timings (low-rank ranks by latency budget) get the same numbers on every
host. The formula is the usual first-order CPU model: a fixed cost per compute op (dispatch, data
movement) plus a cost per multiply-accumulate. Factorizing a layer adds an op and removes MACs,
so it pays on a wide layer over many pixels and not on a small one."""
from __future__ import annotations

import math
from pathlib import Path

from tfkit.types import BenchResult, LatencyStats

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def ops_and_macs(flatbuffer: bytes) -> tuple[int, int]:
    """(compute ops, MACs) of a flatbuffer: per op, output elements over output channels (pixels,
    batch) times the weight tensor's size."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = Interpreter(model_content=flatbuffer,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in plain.get_tensor_details()}
    ops = [op for op in plain._get_ops_details() if op["op_name"] in COMPUTE_OPS]
    # conv (out, kh, kw, in), depthwise (1, kh, kw, channels), dense (out, in): one MAC per weight per pixel
    macs = sum(math.prod(shapes[op["outputs"][0]][:-1]) * math.prod(shapes[op["inputs"][1]]) for op in ops)
    return len(ops), macs


class ScriptedDevice:
    """`run` returns ms = per_op * compute ops + per_mac * MACs (+ the int8 factor in int8) and
    records each call (name, precision, ops, MACs)."""

    name = "scripted"

    def __init__(self, per_op_ms: float = 0.05, per_mac_ms: float = 1e-7, int8_factor: float = 1.0):
        self.per_op_ms, self.per_mac_ms, self.int8_factor = per_op_ms, per_mac_ms, int8_factor
        self.calls: list[tuple[str, str, int, int]] = []

    def latency(self, ops: int, macs: int, precision: str = "float32") -> float:
        ms = self.per_op_ms * ops + self.per_mac_ms * macs
        return ms * (self.int8_factor if precision == "int8" else 1.0)

    def run(self, model_path, *, eval_npz=None, config=None, name=None, precision="unknown") -> BenchResult:
        path = Path(model_path)
        ops, macs = ops_and_macs(path.read_bytes())
        self.calls.append((name or path.stem, str(precision), ops, macs))
        ms = self.latency(ops, macs, str(precision))
        return BenchResult(name=name or path.stem, precision=str(precision), size_bytes=path.stat().st_size,
                           latency_ms=LatencyStats(ms, ms, ms, ms, 1), init_ms=0.0, first_inference_ms=ms,
                           peak_rss_mb=0.0, threads=1, runtime="scripted", device=self.name)
