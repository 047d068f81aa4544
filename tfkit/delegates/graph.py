"""The main subgraph of any .tflite file as plain data: ops (name, version) and the tensors they
read and write (dtype, static shape, shape signature, constant or not, quantization). Every
delegate rule is a function of this, so rules are testable on hand-made graphs too.

Example:
    >>> g = TfliteGraph.from_flatbuffer(Path("model.tflite").read_bytes())  # doctest: +SKIP
    >>> [(op.name, op.version) for op in g.ops][:2]  # doctest: +SKIP
    [('CONV_2D', 3), ('DEPTHWISE_CONV_2D', 2)]
"""
from __future__ import annotations

from dataclasses import dataclass

from tfkit.convert.flatbuffer import metadata, op_code, read_model, tensor_type_names
from tfkit.errors import ModelFileError

CONTROL_FLOW = ("WHILE", "IF", "CALL_ONCE", "CALL")  # ops that run other subgraphs


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str  # "float32", "int8", "uint8", "int16", "int32", "int64", "bool", "string", ...
    shape: tuple[int, ...]
    signature: tuple[int, ...]  # -1 where the size is only known at run time
    constant: bool  # holds data in the file (weights, biases, shape constants)
    quantized: bool
    per_channel: bool

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.signature) or any(d < 0 for d in self.shape)

    def describe(self) -> str:
        return f"{self.name or f'T#{self.index}'} {list(self.signature or self.shape)} {self.dtype}"


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin name ("CONV_2D") or "CUSTOM:<code>"
    version: int
    inputs: tuple[TensorInfo, ...]  # absent optional inputs are left out
    outputs: tuple[TensorInfo, ...]

    @property
    def custom(self) -> bool:
        return self.name.startswith("CUSTOM")

    @property
    def runtime_tensors(self) -> tuple[TensorInfo, ...]:
        """Inputs computed at run time and all outputs (constants excluded)."""
        return tuple(t for t in self.inputs if not t.constant) + self.outputs


@dataclass(frozen=True)
class TfliteGraph:
    ops: tuple[OpInfo, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    subgraphs: int
    size_bytes: int
    min_runtime_version: str | None

    @classmethod
    def from_flatbuffer(cls, data: bytes, *, what: str = "model") -> TfliteGraph:
        model = read_model(data, what=what)
        graph = model.subgraphs[0]
        names = tensor_type_names()
        buffers = model.buffers or []
        tensors = []
        for i, t in enumerate(graph.tensors or []):
            shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
            signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
            buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
            constant = buf is not None and ((buf.data is not None and len(buf.data) > 0) or bool(buf.size))
            q = t.quantization
            scales = 0 if q is None or q.scale is None else len(q.scale)
            name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
            tensors.append(TensorInfo(i, name, names.get(t.type, f"type{t.type}"), shape, signature, constant,
                                      scales > 0, scales > 1))

        def pick(indices) -> tuple[TensorInfo, ...]:
            out = []
            for j in (indices if indices is not None else ()):
                if j < 0:
                    continue  # an optional input left empty (e.g. no bias)
                if j >= len(tensors):
                    raise ModelFileError(f"{what}: an op refers to tensor {j}, but the graph has {len(tensors)}")
                out.append(tensors[int(j)])
            return tuple(out)

        ops = []
        for i, op in enumerate(graph.operators or []):
            name, version, custom = op_code(model, op.opcodeIndex)
            ops.append(OpInfo(i, f"CUSTOM:{custom}" if name == "CUSTOM" else name, version, pick(op.inputs),
                              pick(op.outputs)))
        runtime = metadata(model).get("min_runtime_version")
        return cls(tuple(ops), pick(graph.inputs), pick(graph.outputs), len(model.subgraphs), len(data),
                   runtime.rstrip(b"\0").decode("ascii", "replace") if runtime else None)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Partition:
    """A run of ops that one side (delegate or CPU) executes back to back."""

    delegated: bool
    ops: tuple[int, ...]  # op indices, in the order they were taken


def partition(graph: TfliteGraph, delegated: set[int], *, skip: frozenset[int] = frozenset()) -> list[Partition]:
    """Split the graph the way TFLite does before it hands nodes to a delegate
    (PartitionGraphIntoIndependentNodeSubsets in tensorflow/lite/graph_info.cc, greedy mode):
    each epoch takes every op whose inputs are ready and whose side (delegated or not) is the
    epoch's, so an op with only constant inputs (a DENSIFY of stored weights) does not split a
    delegated run the way it would in plain execution order. `skip`: ops left out of the
    partitioning (their outputs count as ready from the start)."""
    produced = {t.index for op in graph.ops if op.index not in skip for t in op.outputs}
    ready = {t.index for op in graph.ops for t in op.inputs if t.index not in produced}
    todo = [op for op in graph.ops if op.index not in skip]
    done: set[int] = set()
    out: list[Partition] = []
    while len(done) < len(todo):
        side, taken, progress = None, [], True
        while progress:
            progress = False
            for op in todo:
                if op.index in done or any(t.index not in ready for t in op.inputs):
                    continue
                mine = op.index in delegated
                side = mine if side is None else side
                if mine != side:
                    continue
                done.add(op.index)
                taken.append(op.index)
                ready.update(t.index for t in op.outputs)
                progress = True
        if not taken:  # a cycle or an input nobody produces: keep the rest in file order
            rest = [op.index for op in todo if op.index not in done]
            out.append(Partition(False, tuple(rest)))
            break
        out.append(Partition(bool(side), tuple(taken)))
    return out
