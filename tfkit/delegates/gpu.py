"""GPU delegate: the delegate's compatibility rules as data, plus LiteRT's static analyzer.

The analyzer is a static check of op/dtype support; a model it passes can still fall back at run
time on a given phone, so it is a first gate, not a verdict.

Example:
    >>> report = analyze_gpu(flatbuffer)  # doctest: +SKIP
    >>> report.compatible, report.warnings
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from tfkit.delegates.base import (
    DELEGATES,
    DelegateProvider,
    LoadHint,
    OpDecision,
    Reason,
    dynamic_tensor,
    runtime_dtypes,
)
from tfkit.delegates.graph import OpInfo

COMPATIBLE_MARK = "Your model looks compatible with GPU delegate"


@dataclass(frozen=True)
class GpuReport:
    compatible: bool
    warnings: tuple[str, ...]  # the analyzer's "GPU COMPATIBILITY WARNING" lines, as printed

    def to_dict(self) -> dict:
        return asdict(self)


def parse_analyzer_output(text: str) -> GpuReport:
    """Pure parser of `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` output."""
    warnings = tuple(line.strip() for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line)
    return GpuReport(COMPATIBLE_MARK in text and not warnings, warnings)


def analyze_gpu(flatbuffer: bytes) -> GpuReport:
    """LiteRT's model analyzer with its GPU compatibility pass (no TensorFlow import)."""
    from ai_edge_litert import _pywrap_analyzer_wrapper

    return parse_analyzer_output(_pywrap_analyzer_wrapper.ModelAnalyzer(flatbuffer, False, True))


# --- the GPU delegate provider -------------------------------------------------------------------
# The analyzer above passes ops that the delegate's own compatibility checker
# (tensorflow/lite/tools/versioning/gpu_compatibility.cc) rejects: measured here, it calls a 5-D
# STRIDED_SLICE and ARG_MAX "compatible". So coverage comes from the checker's rules as data.
GPU_SUPPORTED = frozenset("""
ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY
DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP
FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS
LESS_EQUAL LOG LOGICAL_AND LOGISTIC LSTM MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL
ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1
RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX
SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH TILE
TRANSPOSE TRANSPOSE_CONV
""".split())  # noqa: SIM905  (a table reads better as text)
GPU_DTYPES = frozenset({"float32", "float16", "int8", "uint8", "int32", "bool"})  # int8/uint8: quantized models
GPU_MAX_RANK = 4  # BHWC; 5-D (BHWDC) only inside a few kernels
GPU_RANK_EXACT = {"STRIDED_SLICE": (3, 4), "PAD": (3, 4), "PADV2": (3, 4), "MIRROR_PAD": (3, 4)}


def _gpu_reason(op: OpInfo) -> Reason | None:
    if op.name not in GPU_SUPPORTED:
        return f"op unsupported: the GPU delegate has no {op.name}"
    dyn = dynamic_tensor(op)
    if dyn is not None:
        return "dynamic shape: GPU kernels are compiled for static shapes", dyn.describe()
    bad = sorted(runtime_dtypes(op) - GPU_DTYPES)
    if bad:
        return f"dtype {', '.join(bad)}: the GPU delegate computes in float16/float32"
    allowed = GPU_RANK_EXACT.get(op.name)
    if allowed and op.inputs and op.inputs[0].rank not in allowed:
        ranks = " or ".join(map(str, allowed))
        return f"{op.inputs[0].rank}-D input: the GPU {op.name} takes {ranks}-D tensors only", op.inputs[0].describe()
    big = next((t for t in op.runtime_tensors if t.rank > GPU_MAX_RANK), None)
    if big is not None:
        return f"{big.rank}-D tensor: the GPU delegate works on tensors of up to 4-D (BHWC)", big.describe()
    return None


@DELEGATES.register("gpu")
class GpuDelegate(DelegateProvider):
    name = "gpu"
    title = "GPU delegate (OpenCL/OpenGL ES on Android, Metal on iOS)"
    benchmark_flags = ("--use_gpu=true", "--gpu_precision_loss_allowed=true")
    android_accelerator = "GpuDelegate (org.tensorflow.lite.gpu) / Accelerator.GPU (CompiledModel API)"
    max_partitions = 1  # TfLiteGpuDelegateOptionsV2.max_delegated_partitions default

    def op_reason(self, op, graph):
        return _gpu_reason(op)

    def decide(self, graph):
        """Only the largest run of supported ops is delegated (max_delegated_partitions=1 by
        default); the other supported runs stay on the CPU with the reason said. A DEQUANTIZE of
        float16 weights (float16 models) is folded into the partition of the ops that read it."""
        plain = super().decide(graph)
        folded = {op.index for op in graph.ops if op.name == "DEQUANTIZE" and op.inputs
                  and op.inputs[0].constant and op.inputs[0].dtype == "float16"}
        runs, start, last = [], None, None
        for d in [*plain, None]:
            if d is not None and d.index in folded:
                continue
            if d is not None and d.delegated and start is None:
                start = d.index
            elif (d is None or not d.delegated) and start is not None:
                runs.append((start, last + 1))
                start = None
            last = d.index if d is not None else last
        keep = sorted(runs, key=lambda r: r[0] - r[1])[:self.max_partitions]
        inside = {i for a, b in keep for i in range(a, b) if i not in folded}
        readers: dict[int, set[int]] = {}
        for op in graph.ops:
            for t in op.inputs:
                readers.setdefault(t.index, set()).add(op.index)
        out = []
        for d in plain:
            if d.index in folded:
                used = set().union(*(readers.get(t.index, set()) for t in graph.ops[d.index].outputs))
                if used & inside:
                    out.append(OpDecision(d.index, d.op, True))
                    continue
                out.append(OpDecision(d.index, d.op, False, "float16 weights read only by ops on the CPU"))
            elif d.delegated and d.index not in inside:
                out.append(OpDecision(d.index, d.op, False, "supported, but outside the largest GPU partition "
                                      "(max_delegated_partitions=1 by default)", f"op #{d.index}"))
            else:
                out.append(d)
        return out

    def coverage(self, graph, flatbuffer: bytes | None = None):
        cov = super().coverage(graph)
        if flatbuffer is not None:
            report = analyze_gpu(flatbuffer)
            extra = [f"LiteRT analyzer: {w}" for w in report.warnings]
            cov = replace(cov, source="static rules (the GPU delegate's compatibility checks) + LiteRT analyzer",
                          notes=(*cov.notes, *extra))
        return cov

    def load_hint(self):
        import ctypes.util

        lib = ctypes.util.find_library("tensorflowlite_gpu_delegate")
        return LoadHint(lib is not None, (
            f"ai_edge_litert.interpreter.load_delegate('{lib}')" if lib else
            "not on this host: build libtensorflowlite_gpu_delegate.so (bazel build "
            "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so) or run on a phone "
            "(tfkit bench --device adb:SERIAL) where the LiteRT AAR brings it"))


