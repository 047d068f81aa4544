"""tfkit's metadata inside the .tflite file: labels, input normalization, clip shape, the streaming
state layout and a recommended delegate, as one UTF-8 JSON metadata entry named `tfkit`, so that
the board runner and the Android app need no side files.

`python -m tfkit.convert.metadata MODEL.tflite` prints `describe()` of the file as one JSON object;
`describe_file` (and so `tfkit inspect`) runs it in a child process, since the file may be hostile.

Example:
    >>> data = embed_metadata(flatbuffer, meta)  # doctest: +SKIP
    >>> read_metadata(data).labels  # doctest: +SKIP
    ('left', 'right', 'still')
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.convert.flatbuffer import metadata, op_code, read_model, tensor_type_names, write_model
from tfkit.errors import ModelFileError

ENTRY = "tfkit"  # the metadata entry's name
SCHEMA_VERSION = 1  # bump when a reader of the old layout would misread the new one
FORMS = ("clip", "stream")
BOARD_RUNTIME = (2, 14, 0)  # tflite-runtime 2.14: the last wheel for old boards (numpy < 2)
PARSE_TIMEOUT_S = 60.0


def recommended_delegate(precision: str) -> str:
    """The delegate to try first for a precision: the GPU delegate runs float16 natively, XNNPACK
    (the CPU default) the rest.

    Example:
        >>> recommended_delegate("int8"), recommended_delegate("float16")
        ('xnnpack', 'gpu')
    """
    return "gpu" if precision == "float16" else "xnnpack"


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _plain(value):
    """The JSON form of a value (tuples become lists), so that built and parsed metadata compare equal."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class InputSpec:
    """The model's data input (the clip, or in the streaming form the one frame)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "float32", "int8", ...
    quantization: tuple[float, int] = (0.0, 0)  # (scale, zero point); (0.0, 0) = not quantized

    def __post_init__(self):
        _need(isinstance(self.name, str) and isinstance(self.dtype, str), "input name and dtype must be strings")
        _need(isinstance(self.shape, list | tuple) and all(_is_int(d) for d in self.shape),
              f"input shape must be a list of ints, got {self.shape!r}")
        q = self.quantization
        _need(isinstance(q, list | tuple) and len(q) == 2 and all(_is_number(v) for v in q),
              f"input quantization must be [scale, zero_point], got {q!r}")
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "quantization", (float(q[0]), int(q[1])))


@dataclass(frozen=True)
class StreamLayout:
    """How the streaming form carries state: feed `frame_input`, read `logits_output`, and feed
    each state's `<name>_out` back as `<name>_in` (requantized when `requantize_states`)."""

    frame_input: str
    logits_output: str
    states: tuple[dict, ...]  # each: name, shape, kind, quantization (input/output scale + zero point)
    requantize_states: bool

    def __post_init__(self):
        _need(isinstance(self.frame_input, str) and isinstance(self.logits_output, str),
              "stream frame_input and logits_output must be strings")
        _need(isinstance(self.states, list | tuple)
              and all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in self.states),
              "stream states must be a list of objects with a 'name'")
        _need(isinstance(self.requantize_states, bool), "stream requantize_states must be true or false")
        object.__setattr__(self, "states", tuple(_plain(s) for s in self.states))


@dataclass(frozen=True)
class ModelMetadata:
    """Everything a runner needs to feed the model and read its answer, without side files.

    Example:
        >>> read_metadata(Path("model.tflite").read_bytes()).normalization  # doctest: +SKIP
        'symmetric'
    """

    labels: tuple[str, ...]
    normalization: str | None  # a tfkit.types.Normalization value: x = pixel * pixel_scale + pixel_offset
    pixel_scale: float | None  # None (and normalization None): converted without knowing the data
    pixel_offset: float | None
    frames: int | None
    size: int | None
    stride: int | None
    fps: float | None  # None: every `stride`-th frame of the video
    form: str  # "clip" | "stream"
    precision: str
    input: InputSpec
    stream: StreamLayout | None
    recommended_delegate: str
    model: dict  # the VideoModelSpec as a dict (empty for a user model)
    tfkit_version: str
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        _need(isinstance(self.labels, list | tuple) and all(isinstance(x, str) for x in self.labels),
              "labels must be a list of strings")
        for name in ("precision", "recommended_delegate", "tfkit_version"):
            _need(isinstance(getattr(self, name), str), f"{name} must be a string")
        _need(self.normalization is None or isinstance(self.normalization, str), "normalization must be a string")
        for name in ("pixel_scale", "pixel_offset", "fps"):
            _need(getattr(self, name) is None or _is_number(getattr(self, name)), f"{name} must be a number or null")
        for name in ("frames", "size", "stride"):
            value = getattr(self, name)
            _need(value is None or (_is_int(value) and value >= 1), f"{name} must be a positive int or null")
        _need(self.form in FORMS, f"form must be one of {FORMS}, got {self.form!r}")
        _need(isinstance(self.input, InputSpec), "input must be an InputSpec")
        _need((self.stream is not None) == (self.form == "stream"), "a stream layout goes with form 'stream' only")
        _need(isinstance(self.model, dict), "model must be an object")
        _need(self.schema_version == SCHEMA_VERSION, f"schema_version must be {SCHEMA_VERSION}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "model", _plain(self.model))

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict, *, what: str = f"metadata entry {ENTRY!r}") -> ModelMetadata:
        """Parse and validate; a newer schema or a missing/ill-typed field -> ModelFileError naming `what`."""
        if not isinstance(d, dict):
            raise ModelFileError(f"{what} must hold a JSON object, got {type(d).__name__}")
        version = d.get("schema_version")
        if not _is_int(version):
            raise ModelFileError(f"{what} has no integer schema_version (got {version!r}): not tfkit metadata")
        if version != SCHEMA_VERSION:
            raise ModelFileError(f"{what} has schema version {version}, but this tfkit reads version "
                                 f"{SCHEMA_VERSION}; {'upgrade tfkit' if version > SCHEMA_VERSION else 'reconvert'}"
                                 " to read it")
        try:
            stream = d["stream"]
            return cls(**{**{k: d[k] for k in _FIELDS}, "input": InputSpec(**d["input"]),
                          "stream": None if stream is None else StreamLayout(**stream)})
        except KeyError as e:
            raise ModelFileError(f"{what} lacks field {e.args[0]!r}; reconvert the model") from None
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{what} is invalid: {e}; reconvert the model") from None


_FIELDS = tuple(f for f in ModelMetadata.__dataclass_fields__ if f not in ("input", "stream"))


def metadata_for(spec: dict, data_spec: dict | None = None) -> ModelMetadata:
    """The metadata of a converted artifact, from the spec ConvertStep records (model, classes, clip,
    precision, form, input, stream) and the spec of the dataset it calibrated on (clip, classes), if
    any. A model without classes of its own (never trained) takes the dataset's when their count
    fits; without a clip spec anywhere the normalization is left unknown (None)."""
    from tfkit import __version__
    from tfkit.types import Normalization

    data_spec = data_spec or {}
    clip, model, shape = data_spec.get("clip") or spec.get("clip") or {}, spec.get("model", {}), spec["input"]["shape"]
    labels = spec.get("classes")
    if labels is None and len(data_spec.get("classes", ())) == model.get("num_classes"):
        labels = data_spec["classes"]
    norm = clip.get("normalization")
    scale, offset = Normalization(norm).scale_offset() if norm else (None, None)
    stream = spec.get("stream")
    return ModelMetadata(
        labels=tuple(labels or ()), normalization=norm, pixel_scale=scale, pixel_offset=offset,
        frames=clip.get("frames") or model.get("frames") or (shape[1] if len(shape) == 5 else None),
        size=clip.get("size") or (shape[-3] if len(shape) >= 4 else None), stride=clip.get("stride"),
        fps=clip.get("fps"),
        form=spec["form"], precision=spec["precision"], input=InputSpec(**spec["input"]),
        stream=None if stream is None else StreamLayout(
            stream["frame_input"], stream["logits_output"], stream["states"], stream["requantize_states"]),
        recommended_delegate=recommended_delegate(spec["precision"]), model=model, tfkit_version=__version__)


def _entry_name(entry) -> str:
    return entry.name.decode("utf-8", "replace") if isinstance(entry.name, bytes) else str(entry.name)


def _buffer_is_free(model, index: int) -> bool:
    """Whether no tensor and no (remaining) metadata entry refers to buffer `index`, so that an old
    entry's buffer may be reused instead of being left behind as dead bytes."""
    if index <= 0 or index >= len(model.buffers or []):
        return False
    used = {t.buffer for g in model.subgraphs or [] for t in g.tensors or []}
    return index not in used | {m.buffer for m in model.metadata or []}


def embed_metadata(flatbuffer: bytes, meta: ModelMetadata) -> bytes:
    """`flatbuffer` with one `tfkit` metadata entry holding `meta` (an old one is replaced); the
    graph, its buffers and the converter's own entries are kept as they are."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = read_model(flatbuffer)
    data = np.frombuffer(meta.to_json().encode("utf-8"), np.uint8)
    old = [m for m in model.metadata or [] if _entry_name(m) == ENTRY]
    model.metadata = [m for m in model.metadata or [] if _entry_name(m) != ENTRY]
    if old and _buffer_is_free(model, old[0].buffer):
        index = old[0].buffer
    else:
        model.buffers = [*(model.buffers or []), schema.BufferT()]
        index = len(model.buffers) - 1
    model.buffers[index].data, model.buffers[index].offset, model.buffers[index].size = data, 0, 0
    entry = schema.MetadataT()
    entry.name, entry.buffer = ENTRY, index
    model.metadata.append(entry)
    return write_model(model)


def _parse(raw: bytes) -> ModelMetadata:
    what = f"metadata entry {ENTRY!r}"
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        from tfkit.isolate import plain_reason

        raise ModelFileError(f"{what} is not valid UTF-8 JSON: {plain_reason(e)}; reconvert the model with "
                             "`tfkit convert`") from None
    return ModelMetadata.from_dict(d, what=what)


def read_metadata(flatbuffer: bytes, *, what: str = "model") -> ModelMetadata | None:
    """The tfkit metadata of a .tflite file, or None for a model tfkit did not convert."""
    raw = metadata(read_model(flatbuffer, what=what)).get(ENTRY)
    return None if raw is None else _parse(raw)


def _version_tuple(text: str) -> tuple[int, ...] | None:
    parts = []
    for piece in text.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            return None
        parts.append(int(digits))
    return tuple(parts + [0] * (3 - len(parts))) if parts else None


def board_runtime_verdict(min_runtime_version: str | None) -> dict:
    """Whether the converter's `min_runtime_version` says the ops run on tflite-runtime 2.14.

    Example:
        >>> board_runtime_verdict("1.14.0")["verdict"], board_runtime_verdict("2.17.0")["verdict"]
        ('yes', 'no')
    """
    board = ".".join(map(str, BOARD_RUNTIME[:2]))
    parsed = _version_tuple(min_runtime_version) if min_runtime_version else None
    if parsed is None:
        why = ("the model has no min_runtime_version entry" if not min_runtime_version
               else f"min_runtime_version {min_runtime_version!r} is not a version")
        return {"ok": False, "verdict": "unknown",
                "reason": f"unknown: {why}, so nothing says which runtime its op versions need; "
                          f"try it on a board with tflite-runtime {board}"}
    if parsed <= BOARD_RUNTIME:
        return {"ok": True, "verdict": "yes",
                "reason": f"min_runtime_version {min_runtime_version} <= {board}: the converter's op-version "
                          f"table says tflite-runtime {board} runs every op version in it"}
    return {"ok": False, "verdict": "no",
            "reason": f"min_runtime_version {min_runtime_version} > {board}: some op version is newer than "
                      f"tflite-runtime {board}; run it with ai-edge-litert, or convert for the board"}


def _tensor(subgraph, index: int, name: str | None = None) -> dict:
    tensors = subgraph.tensors or []
    if not 0 <= index < len(tensors):
        raise ModelFileError(f"an input/output refers to tensor {index}, but the graph has {len(tensors)}")
    t = tensors[index]
    tensor_name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
    shape = [int(d) for d in t.shape] if t.shape is not None else []
    q, quantization = t.quantization, None
    if q is not None and q.scale is not None and len(q.scale):
        scales = [float(s) for s in q.scale]
        zero_points = [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else [0] * len(scales)
        quantization = ([scales[0], zero_points[0]] if len(scales) == 1 else
                        {"scale": scales, "zero_point": zero_points, "axis": int(q.quantizedDimension)})
    return {"name": name or tensor_name, "tensor": tensor_name, "index": index, "shape": shape,
            "shape_signature": [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else shape,
            "dtype": tensor_type_names().get(t.type, f"type{t.type}"), "quantization": quantization}


def _io(model) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs by their signature names (the first signature), else subgraph 0's own."""
    for sig in model.signatureDefs or []:
        if 0 <= sig.subgraphIndex < len(model.subgraphs):
            graph = model.subgraphs[sig.subgraphIndex]
            return ([_tensor(graph, m.tensorIndex, _name(m.name)) for m in sig.inputs or []],
                    [_tensor(graph, m.tensorIndex, _name(m.name)) for m in sig.outputs or []])
    graph = model.subgraphs[0]
    return ([_tensor(graph, int(i)) for i in (graph.inputs if graph.inputs is not None else [])],
            [_tensor(graph, int(i)) for i in (graph.outputs if graph.outputs is not None else [])])


def _name(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def describe(flatbuffer: bytes, *, what: str = "model") -> dict:
    """A .tflite file as plain data: tfkit metadata (None for a foreign model), inputs, outputs,
    op counts by version, metadata entries and whether tflite-runtime 2.14 runs it."""
    model = read_model(flatbuffer, what=what)
    entries = metadata(model)
    raw_tfkit = entries.get(ENTRY)
    runtime = entries.get("min_runtime_version")
    runtime = runtime.rstrip(b"\0").decode("ascii", "replace") if runtime else None
    counts: dict[tuple[str, int], int] = {}
    for graph in model.subgraphs:
        for op in graph.operators or []:
            name, version, custom = op_code(model, op.opcodeIndex)
            key = (f"CUSTOM:{custom}" if name == "CUSTOM" and custom else name, version)
            counts[key] = counts.get(key, 0) + 1
    inputs, outputs = _io(model)
    return {
        "tfkit": None if raw_tfkit is None else _parse(raw_tfkit).to_dict(),
        "size_bytes": len(flatbuffer),
        "description": _name(model.description),
        "subgraphs": len(model.subgraphs),
        "signatures": [_name(s.signatureKey) for s in model.signatureDefs or []],
        "inputs": inputs,
        "outputs": outputs,
        "ops": [{"name": n, "version": v, "count": c} for (n, v), c in sorted(counts.items())],
        "metadata_entries": {name: len(data) for name, data in entries.items()},
        "min_runtime_version": runtime,
        "tflite_runtime_2_14": board_runtime_verdict(runtime),
    }


def child_command(path: Path) -> list[str]:
    from tfkit.isolate import child_command as command

    return command("tfkit.convert.metadata", [str(path)])


def describe_file(path: str | os.PathLike, *, timeout_s: float | None = None) -> dict:
    """`describe()` of a .tflite file, parsed in a child process so that a hostile file cannot crash
    or hang this one (`timeout_s` defaults to PARSE_TIMEOUT_S); every failure is a ModelFileError."""
    from tfkit.isolate import check_size, run_child

    path = Path(path)
    check_size(path)
    result = run_child("tfkit.convert.metadata", [str(path)], what=str(path),
                       timeout_s=PARSE_TIMEOUT_S if timeout_s is None else timeout_s, command=child_command(path))
    return result["describe"]


def main(argv: list[str]) -> int:
    """The child's side of `describe_file`: print {"describe": ...} or {"error": ...} as one line."""
    from ai_edge_litert import schema_py_generated  # noqa: F401  (imported before the memory cap)

    from tfkit.isolate import child_main

    if len(argv) != 1:
        print(json.dumps({"error": "usage: python -m tfkit.convert.metadata MODEL.tflite"}))
        return 2
    return child_main(argv[0], lambda data: {"describe": describe(data, what=argv[0])})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
