"""Coral Edge TPU. Static rules from Coral's model requirements, and, when `edgetpu_compiler`
is on PATH, the compiler's own per-op log parsed into the same table.

The requirements (coral.ai/docs/edgetpu/models-intro): every tensor quantized to 8 bits, sizes
and parameters constant at compile time, tensors of at most 3 dimensions larger than 1, only the
listed ops; and the compiler maps one contiguous part of the graph: from the first op it cannot
map, everything after runs on the CPU, even ops it could map.

Example:
    >>> get_delegate("edgetpu").coverage(graph, flatbuffer).summary()  # doctest: +SKIP
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from tfkit.delegates.base import (
    DELEGATES,
    Coverage,
    DelegateProvider,
    LoadHint,
    OpDecision,
    Reason,
    dynamic_tensor,
    summarize,
)
from tfkit.delegates.graph import OpInfo, TfliteGraph
from tfkit.errors import ToolNotFoundError

COMPILER = "edgetpu_compiler"
INSTALL = ("install the Edge TPU compiler (x86-64 Debian/Ubuntu): add the apt source "
           "'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main', then "
           "'apt-get install edgetpu-compiler'; see coral.ai/docs/edgetpu/compiler")
EDGETPU_OPS = frozenset("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEQUANTIZE EXPAND_DIMS FULLY_CONNECTED
HARD_SWISH L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU QUANTIZE
REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT
SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH TRANSPOSE
TRANSPOSE_CONV
""".split())  # noqa: SIM905  (a table reads better as text)
EIGHT_BIT = frozenset({"int8", "uint8"})
RANK_RULE = ("more than 3 dimensions larger than 1 (only the 3 innermost may be; a batch or time axis "
             "folded into the batch breaks this)")
AFTER_UNSUPPORTED = "after the first unmapped op: the Edge TPU compiler maps one contiguous part, the rest runs on CPU"


def _edgetpu_reason(op: OpInfo) -> Reason | None:
    if op.name not in EDGETPU_OPS:
        return f"op unsupported: the Edge TPU has no {op.name}"
    dyn = dynamic_tensor(op)
    if dyn is not None:
        return "dynamic shape: the Edge TPU needs sizes fixed at compile time", dyn.describe()
    for t in op.runtime_tensors:
        if t.dtype not in EIGHT_BIT:
            return f"not fully int8: {t.dtype} tensors (the Edge TPU runs 8-bit quantized tensors only)", t.describe()
    for t in op.runtime_tensors:
        if t.rank > 3 and sum(d > 1 for d in t.shape) > 3:
            return RANK_RULE, t.describe()
    return None


def parse_compiler_log(text: str, graph: TfliteGraph | None = None) -> Coverage:
    """Pure parser of `edgetpu_compiler -s` output: the 'Operator  Count  Status' table."""
    rows, version, in_table = [], None, False
    for line in text.splitlines():
        if m := re.match(r"Edge TPU Compiler version\s+(\S+)", line):
            version = m.group(1)
        if re.match(r"\s*Operator\s+Count\s+Status", line):
            in_table = True
            continue
        if in_table and (m := re.match(r"\s*([A-Z][A-Z0-9_]*)\s+(\d+)\s+(.+?)\s*$", line)):
            rows.append((m.group(1), int(m.group(2)), m.group(3)))
    if not rows:
        errors = [ln.strip() for ln in text.splitlines() if "error" in ln.lower() or "not" in ln.lower()]
        reason = errors[0] if errors else "the compiler mapped nothing"
        n = len(graph.ops) if graph else 0
        decisions = [OpDecision(op.index, op.name, False, f"edgetpu_compiler: {reason}") for op in
                     (graph.ops if graph else ())]
        return summarize("edgetpu", decisions, source=f"edgetpu_compiler {version or '?'}",
                         notes=(f"compiler output had no operator table ({n} ops)",))
    decisions, i = [], 0
    for op, count, status in rows:
        mapped = status.lower().startswith("mapped to edge tpu")
        for _ in range(count):
            decisions.append(OpDecision(i, op, mapped, "" if mapped else f"edgetpu_compiler: {status}"))
            i += 1
    return summarize("edgetpu", decisions, source=f"edgetpu_compiler {version or '?'}")


@DELEGATES.register("edgetpu")
class EdgeTpuDelegate(DelegateProvider):
    name = "edgetpu"
    title = "Coral Edge TPU (libedgetpu, after edgetpu_compiler)"
    benchmark_flags = ("--external_delegate_path=libedgetpu.so.1",)
    runner_library = "libedgetpu.so.1"
    android_accelerator = "none: Coral boards and USB accelerators run Linux (tfkit bench --device ssh:HOST)"

    def op_reason(self, op: OpInfo, graph: TfliteGraph) -> str | None:
        return _edgetpu_reason(op)

    def decide(self, graph: TfliteGraph) -> list[OpDecision]:
        out, stopped, first = [], False, ""
        for d in super().decide(graph):
            if stopped and d.delegated:
                d = OpDecision(d.index, d.op, False, AFTER_UNSUPPORTED, first)
            if not stopped and not d.delegated:
                first = f"first unmapped: op #{d.index} {d.op}"
            stopped = stopped or not d.delegated
            out.append(d)
        return out

    def coverage(self, graph: TfliteGraph, flatbuffer: bytes | None = None) -> Coverage:
        static = super().coverage(graph)
        if flatbuffer is None:
            return static
        try:
            return compile_log_coverage(flatbuffer, graph)
        except ToolNotFoundError as e:
            return replace(static, notes=(*static.notes, f"static rules only: {e}"))

    def load_hint(self) -> LoadHint:
        import ctypes.util

        lib = ctypes.util.find_library("edgetpu")
        return LoadHint(lib is not None, "ai_edge_litert.interpreter.load_delegate('libedgetpu.so.1') on a "
                        "model compiled by edgetpu_compiler" + ("" if lib else "; libedgetpu is not on this host: "
                                                                "apt-get install libedgetpu1-std (Coral apt source)"))


def compile_log_coverage(flatbuffer: bytes, graph: TfliteGraph | None = None, *, timeout: float = 300) -> Coverage:
    """Run `edgetpu_compiler -s` on the model and parse its table; ToolNotFoundError if absent."""
    exe = shutil.which(COMPILER)
    if exe is None:
        raise ToolNotFoundError(f"{COMPILER} is not on PATH: {INSTALL}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(flatbuffer)
        done = subprocess.run([exe, "-s", "-o", tmp, str(src)], capture_output=True, text=True, timeout=timeout,
                              check=False)
    return parse_compiler_log(done.stdout + "\n" + done.stderr, graph)
