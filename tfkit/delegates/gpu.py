"""GPU delegate: the delegate's compatibility rules as data, plus LiteRT's static analyzer.

The analyzer is a static check of op/dtype support; a model it passes can still fall back at run
time on a given phone, so it is a first gate, not a verdict.

Example:
    >>> report = analyze_gpu(flatbuffer)  # doctest: +SKIP
    >>> report.compatible, report.warnings
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, replace

from tfkit.delegates.base import (
    DELEGATES,
    DelegateProvider,
    LoadHint,
    OpDecision,
    Reason,
    decision,
    dynamic_tensor,
    keep_largest_partitions,
    runtime_dtypes,
)
from tfkit.delegates.graph import OpInfo
from tfkit.errors import UnknownNameError

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


# Where LiteRT's GPU accelerator (ML Drift over WebGPU, what ai-edge-litert ships) refuses what
# the classic delegate's checks pass; each one measured on SwiftShader (see docs/delegate_coverage.md).
ML_DRIFT_REFUSES = {
    "DENSIFY": "op unsupported by LiteRT's GPU accelerator (ML Drift): 'DENSIFY: Operation is not supported.' "
               "(sparse weights stay on the CPU and split the graph)",
}
FP16_ON_CPU = ("float16 weights: with part of the graph on the CPU the delegate leaves their DEQUANTIZE there "
               "(it runs once and is cached; the GPU reads the float16 weights itself)")
# Ops that ML Drift takes with int16 tensors (its type check is in the compute kernels only):
# measured on the zoo's int16x8 models, where it put a RESHAPE, ADD, MUL or PAD on the GPU, but
# refused an int16 ADD or MUL with a constant operand ("Can't parse inputs with const tensors.").
ML_DRIFT_INT16_OPS = frozenset({"ADD", "MUL", "PAD", "RESHAPE"})
BACKENDS = {
    "opencl": "TFLite GPU delegate (OpenCL/OpenGL ES on Android, Metal on iOS): its compatibility rules",
    "ml_drift": "LiteRT GPU accelerator (ML Drift over WebGPU/Vulkan): the same rules with its measured differences",
}


def _gpu_reason(op: OpInfo, backend: str = "opencl") -> Reason | None:
    if op.custom:
        return None  # common_reason already refused the custom ops the delegate has no parser for
    if op.name not in GPU_SUPPORTED:
        return f"op unsupported: the GPU delegate has no {op.name}"
    if backend == "ml_drift" and op.name in ML_DRIFT_REFUSES:
        return ML_DRIFT_REFUSES[op.name]
    dyn = dynamic_tensor(op)
    if dyn is not None:
        return "dynamic shape: GPU kernels are compiled for static shapes", dyn.describe()
    int16_ok = backend == "ml_drift" and op.name in ML_DRIFT_INT16_OPS
    if int16_ok and op.name in ("ADD", "MUL") and "int16" in runtime_dtypes(op) and any(t.constant for t in op.inputs):
        return "int16 with a constant operand: ML Drift 'Can't parse inputs with const tensors.'"
    bad = sorted(runtime_dtypes(op) - GPU_DTYPES - ({"int16"} if int16_ok else set()))
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


# Custom ops the GPU delegate parses (tensorflow/lite/tools/versioning/gpu_compatibility.cc,
# CheckCustomOpsGpuDelegateCompatibility; model_builder.cc's NewOperationParser), and that LiteRT's
# CompiledModel registers for its GPU accelerator (litert/runtime/compiled_model.cc). MediaPipe's
# own builds add TransformLandmarks, TransformTensorBilinear and Landmarks2TransformMatrix
# through custom parsers; stock delegates do not have them.
GPU_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"})


@DELEGATES.register("gpu")
class GpuDelegate(DelegateProvider):
    name = "gpu"
    title = "GPU delegate (OpenCL/OpenGL ES on Android, Metal on iOS)"
    benchmark_flags = ("--use_gpu=true", "--gpu_precision_loss_allowed=true")
    runner_library = "libtensorflowlite_gpu_delegate.so"
    android_accelerator = "GpuDelegate (org.tensorflow.lite.gpu) / Accelerator.GPU (CompiledModel API)"
    custom_ops = GPU_CUSTOM_OPS
    max_partitions = 1  # TfLiteGpuDelegateOptionsV2.max_delegated_partitions default

    def __init__(self, measure: bool = True, backend: str = "opencl"):
        if backend not in BACKENDS:
            raise UnknownNameError("GPU backend", backend, list(BACKENDS))
        self.measure_real = measure  # False: static rules even where the real accelerator could load
        self.backend = backend  # whose rules the static verdict follows

    def op_reason(self, op, graph):
        return _gpu_reason(op, self.backend)

    def unresolved_custom_op(self, graph) -> OpInfo | None:
        """A custom op that neither this delegate nor stock LiteRT has a kernel for: the model
        then fails to load at all (measured: "Encountered unresolved custom op"), unless the app
        registers one."""
        return next((op for op in graph.ops if op.custom and op.name.split(":", 1)[1] not in self.custom_ops), None)

    def decide(self, graph, refused: dict[int, Reason] | None = None):
        """Only the largest partition of supported ops is delegated (max_delegated_partitions=1 by
        default); the other supported ones stay on the CPU with the reason said. A DEQUANTIZE of
        float16 weights (float16 models) is folded into the partition of the ops that read it.
        `refused`: op index -> reason, to decide from what the real delegate refused instead."""
        if refused is None:
            plain = super().decide(graph)
            stuck = self.unresolved_custom_op(graph)
            if stuck is not None:
                code = stuck.name.split(":", 1)[1]
                why = (f"custom op {code!r}: stock LiteRT has no kernel for it, so the model does not load (with "
                       f"or without the GPU); an app that registers one gets the other ops delegated")
                return [OpDecision(op.index, op.name, False, why, f"op #{stuck.index}") for op in graph.ops]
        else:
            plain = [decision(op, refused.get(op.index)) for op in graph.ops]
        folded = frozenset(op.index for op in graph.ops if op.name == "DEQUANTIZE" and op.inputs
                           and op.inputs[0].constant and op.inputs[0].dtype == "float16")
        out = keep_largest_partitions(graph, plain, self.max_partitions, "supported, but outside the largest GPU "
                                      "partition (max_delegated_partitions=1 by default)", skip=folded)
        inside = {d.index for d in out if d.delegated and d.index not in folded}
        # The delegate's own count (FP16GraphPartitionHelper, measured): with the whole graph on the
        # GPU the float16 weights' DEQUANTIZEs go with it; with any op left on the CPU they stay in
        # the CPU graph (run once, output cached; the GPU reads the float16 weights itself).
        whole = all(d.delegated for d in out if d.index not in folded)
        readers: dict[int, set[int]] = {}
        for op in graph.ops:
            for t in op.inputs:
                readers.setdefault(t.index, set()).add(op.index)
        for d in out:
            if d.index in folded:
                used = set().union(*(readers.get(t.index, set()) for t in graph.ops[d.index].outputs))
                out[d.index] = (OpDecision(d.index, d.op, True) if whole else
                                OpDecision(d.index, d.op, False, FP16_ON_CPU) if used & inside else
                                OpDecision(d.index, d.op, False, "float16 weights read only by ops on the CPU"))
        return out

    def coverage(self, graph, flatbuffer: bytes | None = None):
        """Measured by the real LiteRT GPU accelerator where a Vulkan driver exists (then the
        static rules are checked against it), else the static rules."""
        cov = replace(super().coverage(graph), backend=BACKENDS[self.backend])
        if flatbuffer is None:
            return cov
        report = analyze_gpu(flatbuffer)
        extra = [f"LiteRT analyzer: {w}" for w in report.warnings]
        cov = replace(cov, source="static rules (the GPU delegate's compatibility checks) + LiteRT analyzer",
                      notes=(*cov.notes, *extra))
        if self.backend == "opencl":
            drift = [d for d in GpuDelegate(measure=False, backend="ml_drift").decide(graph) if not d.delegated
                     and d.reason in ML_DRIFT_REFUSES.values()]
            if drift:
                ops = ", ".join(f"{op} x{n}" for op, n in sorted(Counter(d.op for d in drift).items()))
                cov = replace(cov, notes=(*cov.notes, f"LiteRT's GPU accelerator (ML Drift, WebGPU) refuses more: {ops}"))
        if not self.measure_real:
            return cov
        from tfkit.delegates.gpu_measured import measure_coverage

        return measure_coverage(self, graph, flatbuffer, cov)

    def load_hint(self):
        import ctypes.util

        from tfkit.delegates.gpu_measured import HOW_TO_MEASURE, find_vulkan

        setup = find_vulkan()
        if setup is not None:
            env = " ".join(f"{k}={v}" for k, v in setup.env({}).items() if k != "XDG_RUNTIME_DIR")
            return LoadHint(True, f"LiteRT's GPU accelerator: {env} python -c \"from ai_edge_litert.compiled_model "
                                  "import CompiledModel; from ai_edge_litert.hardware_accelerator import "
                                  "HardwareAccelerator as H; CompiledModel.from_file('m.tflite', "
                                  "hardware_accel=H.GPU | H.CPU)\"")
        lib = ctypes.util.find_library("tensorflowlite_gpu_delegate")
        return LoadHint(lib is not None, (
            f"ai_edge_litert.interpreter.load_delegate('{lib}')" if lib else
            f"not on this host: {HOW_TO_MEASURE}; or build libtensorflowlite_gpu_delegate.so (bazel build "
            "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so), or run on a phone "
            "(tfkit bench --device adb:SERIAL) where the LiteRT AAR brings it"))
