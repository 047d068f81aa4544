"""XNNPACK, LiteRT's default CPU delegate. Coverage is measured: the model is loaded in this
host's LiteRT (which applies XNNPACK by default) and every op that ended up outside a DELEGATE
node is reported, with the rule that explains it. Where the model does not load here, the same
rules decide statically.

Example:
    >>> get_delegate("xnnpack").measure(flatbuffer).summary()  # doctest: +SKIP
    'fully delegated (57/57 ops on xnnpack)'
"""
from __future__ import annotations

from dataclasses import replace

from tfkit.delegates.base import (
    DELEGATES,
    Coverage,
    DelegateProvider,
    LoadHint,
    OpDecision,
    common_reason,
    decision,
    runtime_dtypes,
    summarize,
)
from tfkit.delegates.graph import OpInfo, TfliteGraph

# XNNPACK delegate's documented operator list (tensorflow/lite/delegates/xnnpack/README.md).
SUPPORTED = frozenset("""
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CEIL CONCATENATION CONV_2D DEPTH_TO_SPACE DEPTHWISE_CONV_2D
DEQUANTIZE DIV ELU EXP FLOOR FULLY_CONNECTED GELU HARD_SWISH LEAKY_RELU LOGISTIC MAX_POOL_2D MAXIMUM
MEAN MINIMUM MUL NEG PAD PRELU QUANTIZE REDUCE_MAX RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
ROUND RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM
TANH TRANSPOSE TRANSPOSE_CONV
""".split())  # noqa: SIM905  (a table reads better as text)
# Custom ops XNNPACK has kernels for (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc,
# VisitNode's kTfLiteBuiltinCustom case); LiteRT's CompiledModel registers them for its CPU
# accelerator (litert/runtime/compiled_model.cc). ai-edge-litert's plain Interpreter loads them too
# (measured: a Convolution2DTransposeBias model is fully XNNPACK-delegated).
XNNPACK_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D"})
BACKEND = "XNNPACK in this host's LiteRT (the same delegate on Arm phones, with Arm kernels)"
NOT_LOADED = "static rules: the model did not load in this host's LiteRT, so XNNPACK could not be asked"
DTYPES = frozenset({"float32", "float16", "int8", "uint8", "int32"})  # int32: shapes and indices only


@DELEGATES.register("xnnpack")
class XnnpackDelegate(DelegateProvider):
    name = "xnnpack"
    title = "XNNPACK (LiteRT's default CPU delegate)"
    benchmark_flags = ("--use_xnnpack=true",)  # threads come from the benchmark's own --threads
    android_accelerator = "CPU: the default (Interpreter API) / Accelerator.CPU (CompiledModel API)"
    custom_ops = XNNPACK_CUSTOM_OPS

    def op_reason(self, op: OpInfo, graph: TfliteGraph) -> str | None:
        if op.custom:
            return None  # common_reason decided: a custom op XNNPACK has a kernel for
        if op.name not in SUPPORTED:
            return f"op unsupported: XNNPACK has no {op.name} kernel"
        bad = sorted(runtime_dtypes(op) - DTYPES)
        if bad:
            return f"dtype {', '.join(bad)}: XNNPACK computes float32, float16, int8 and uint8"
        return None

    def load_hint(self) -> LoadHint:
        return LoadHint(True, "applied by default: ai_edge_litert.interpreter.Interpreter(model_path=...) "
                              "(opt out with experimental_op_resolver_type=BUILTIN_WITHOUT_DEFAULT_DELEGATES)")

    def coverage(self, graph: TfliteGraph, flatbuffer: bytes | None = None) -> Coverage:
        if flatbuffer is not None:
            measured = self.measure(graph, flatbuffer)
            if measured is not None:
                return measured
        cov = super().coverage(graph)
        return replace(cov, notes=(*cov.notes, NOT_LOADED))

    def measure(self, graph: TfliteGraph, flatbuffer: bytes) -> Coverage | None:
        """What this host's XNNPACK actually took; None if the model does not load here."""
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter

        try:
            it = Interpreter(model_content=flatbuffer, num_threads=1)
            it.allocate_tensors()
            # LiteRT decodes tensor names as UTF-8 here: a file with other bytes in a name loads and
            # runs, so it gets the static rules rather than an error (`inspect` reads it fine).
            nodes = it._get_ops_details()
        except (ValueError, RuntimeError, UnicodeDecodeError):
            return None
        producer = {int(t): i for i, n in enumerate(nodes[:len(graph.ops)]) for t in n["outputs"]}
        delegated: set[int] = set()
        for node in nodes[len(graph.ops):]:
            if node["op_name"] != "DELEGATE":
                continue
            boundary = {int(t) for t in node["inputs"]}
            stack = [int(t) for t in node["outputs"]]
            while stack:
                t = stack.pop()
                p = producer.get(t)
                if t in boundary or p is None or p in delegated:
                    continue
                delegated.add(p)
                stack.extend(int(x) for x in nodes[p]["inputs"] if int(x) >= 0)
        decisions = []
        for op in graph.ops:
            if op.index in delegated:
                decisions.append(OpDecision(op.index, op.name, True))
            else:
                decisions.append(decision(op, common_reason(op, self.custom_ops, self.title) or self.op_reason(op, graph) or
                                          "declined by XNNPACK in this runtime (op parameters it does not handle)"))
        return summarize(self.name, decisions, source=f"measured: ai-edge-litert {version('ai-edge-litert')} "
                                                       "on this host", measured=True, backend=BACKEND, graph=graph)
