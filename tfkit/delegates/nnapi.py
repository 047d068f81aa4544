"""NNAPI (Android's Neural Networks API). Deprecated from Android 15: new apps should use the
GPU delegate or a vendor NPU delegate; every result says so.

Coverage is decided by the NNAPI delegate's documented per-op rules kept as data: the highest
op version it maps and the Android API level that first has the op, plus dtype, rank and
static-shape rules. Like the real delegate, only the largest `max_partitions` delegable
partitions are handed over (StatefulNnApiDelegate::Options::max_number_delegated_partitions,
default 3, tensorflow/lite/delegates/nnapi/nnapi_delegate.h: "sorting partitions in decreasing
order of number of nodes and selecting them until the limit is reached"); the rest run on the
CPU. A device can still run a mapped op on NNAPI's own CPU reference (often
slower than XNNPACK): benchmark with `--disable_nnapi_cpu=true` to see the truth.

Example:
    >>> NnapiDelegate(android_api=30).coverage(graph).summary()  # doctest: +SKIP
"""
from __future__ import annotations

from tfkit.delegates.base import (
    DELEGATES,
    DelegateProvider,
    LoadHint,
    OpDecision,
    Reason,
    dynamic_tensor,
    keep_largest_partitions,
    runtime_dtypes,
)
from tfkit.delegates.graph import OpInfo, TfliteGraph

# op -> (highest op version the NNAPI delegate maps, first Android API level with it)
NNAPI_OPS: dict[str, tuple[int, int]] = {
    "ADD": (2, 27), "MUL": (2, 27), "AVERAGE_POOL_2D": (2, 27), "MAX_POOL_2D": (2, 27), "L2_POOL_2D": (1, 27),
    "CONV_2D": (3, 27), "DEPTHWISE_CONV_2D": (3, 27), "FULLY_CONNECTED": (5, 27), "SOFTMAX": (2, 27),
    "RESHAPE": (1, 27), "RESIZE_BILINEAR": (3, 27), "CONCATENATION": (2, 27), "LOGISTIC": (2, 27),
    "TANH": (2, 27), "RELU": (2, 27), "RELU6": (2, 27), "RELU_N1_TO_1": (1, 27), "FLOOR": (1, 27),
    "L2_NORMALIZATION": (2, 27), "LOCAL_RESPONSE_NORMALIZATION": (1, 27), "SPACE_TO_DEPTH": (2, 27),
    "DEPTH_TO_SPACE": (1, 27), "DEQUANTIZE": (2, 27),
    "SUB": (3, 28), "DIV": (1, 28), "MEAN": (2, 28), "PAD": (2, 28), "SQUEEZE": (1, 28), "STRIDED_SLICE": (2, 28),
    "TRANSPOSE": (2, 28), "SPACE_TO_BATCH_ND": (2, 28), "BATCH_TO_SPACE_ND": (2, 28),
    "HARD_SWISH": (1, 29), "QUANTIZE": (2, 29), "RESIZE_NEAREST_NEIGHBOR": (3, 29), "PADV2": (2, 29),
    "SLICE": (2, 29), "SPLIT": (3, 29), "GATHER": (2, 29), "MAXIMUM": (2, 29), "MINIMUM": (2, 29),
    "PRELU": (1, 29), "EXPAND_DIMS": (1, 29), "ABS": (1, 29), "EXP": (1, 29), "LOG": (1, 29), "RSQRT": (1, 29),
    "SQRT": (1, 29), "SIN": (1, 29), "NEG": (1, 29), "POW": (1, 29), "SUM": (1, 29), "REDUCE_MAX": (2, 29),
    "REDUCE_MIN": (2, 29), "REDUCE_PROD": (1, 29), "REDUCE_ANY": (1, 29), "ARG_MAX": (2, 29), "ARG_MIN": (2, 29),
    "LESS": (2, 29), "LESS_EQUAL": (2, 29), "GREATER": (2, 29), "GREATER_EQUAL": (2, 29), "EQUAL": (2, 29),
    "NOT_EQUAL": (2, 29), "LOGICAL_AND": (1, 29), "LOGICAL_OR": (1, 29), "LOGICAL_NOT": (1, 29),
    "SELECT": (2, 29), "CAST": (1, 29), "TRANSPOSE_CONV": (3, 29), "TILE": (1, 29), "TOPK_V2": (2, 29),
    "LEAKY_RELU": (1, 29),
    "PACK": (2, 30), "ELU": (1, 30), "FILL": (1, 30), "SPLIT_V": (1, 30),
    "BATCH_MATMUL": (1, 31),
}
# dtype -> first Android API level whose NNAPI has it (int8 is TENSOR_QUANT8_ASYMM_SIGNED, NNAPI 1.3)
NNAPI_DTYPES = {"float32": 27, "uint8": 27, "int32": 27, "float16": 29, "bool": 29, "int8": 30}
MAX_PARTITIONS = 3  # StatefulNnApiDelegate::Options::max_number_delegated_partitions default
ANDROID = {27: "8.1", 28: "9", 29: "10", 30: "11", 31: "12", 33: "13", 34: "14", 35: "15"}


def _android(api: int) -> str:
    return f"Android {ANDROID.get(api, '?')} (API {api})"


@DELEGATES.register("nnapi")
class NnapiDelegate(DelegateProvider):
    name = "nnapi"
    title = "NNAPI (Android Neural Networks API; deprecated from Android 15)"
    benchmark_flags = ("--use_nnapi=true", "--disable_nnapi_cpu=true", "--nnapi_allow_fp16=true")
    android_accelerator = "NnApiDelegate (org.tensorflow.lite.nnapi); deprecated in Android 15, prefer GpuDelegate"
    deprecated = ("NNAPI is deprecated from Android 15 (API 35) and often runs on its CPU reference or slower "
                  "than XNNPACK: prefer the GPU delegate (tfkit check --delegate gpu) or a vendor NPU delegate")

    def __init__(self, android_api: int = 30, max_partitions: int = MAX_PARTITIONS):
        self.android_api = android_api
        self.max_partitions = max_partitions  # <= 0: no limit (as the delegate's option)

    def decide(self, graph: TfliteGraph) -> list[OpDecision]:
        limit = self.max_partitions
        why = (f"supported, but outside the {limit} largest NNAPI partitions (max_number_delegated_partitions="
               f"{limit}; raise it in NnApiDelegate.Options, or make the graph split less)")
        return keep_largest_partitions(graph, super().decide(graph), limit, why)

    def op_reason(self, op: OpInfo, graph: TfliteGraph) -> Reason | None:
        rule = NNAPI_OPS.get(op.name)
        if rule is None:
            return f"op unsupported: NNAPI has no mapping for {op.name}"
        max_version, api = rule
        if op.version > max_version:
            return f"op version {op.version}: NNAPI maps {op.name} up to version {max_version}"
        if api > self.android_api:
            return f"needs {_android(api)}; targeted {_android(self.android_api)}"
        dyn = dynamic_tensor(op)
        if dyn is not None:
            return "dynamic shape: NNAPI needs static shapes", dyn.describe()
        for dtype in sorted(runtime_dtypes(op)):
            first = NNAPI_DTYPES.get(dtype)
            if first is None:
                return f"dtype {dtype}: NNAPI has no {dtype} tensors"
            if first > self.android_api:
                return f"dtype {dtype} needs {_android(first)}; targeted {_android(self.android_api)}"
        big = next((t for t in op.runtime_tensors if t.rank > 4), None)
        if big is not None:
            return f"{big.rank}-D tensor: NNAPI operations take tensors of up to 4-D", big.describe()
        return None

    def load_hint(self) -> LoadHint:
        return LoadHint(False, "Android only: Interpreter.Options().addDelegate(NnApiDelegate()) in the app, or "
                               "benchmark_model --use_nnapi=true on the phone (tfkit bench --device adb:SERIAL)")
