"""Reading and writing .tflite flatbuffers with LiteRT's own schema (no TensorFlow import).

Every reader of a .tflite file goes through `read_model`, which turns a truncated or foreign
file into one clear `ModelFileError` instead of a struct/index error from deep inside the
flatbuffer object API. Files that did not come from tfkit should be read in a child process
(`tfkit.delegates.check` does), since a hostile file can still make the object API allocate a
lot before it fails.

Example:
    >>> model = read_model(Path("model.tflite").read_bytes())  # doctest: +SKIP
    >>> [op_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]  # doctest: +SKIP
    ['CONV_2D', 'DEPTHWISE_CONV_2D', ...]
"""
from __future__ import annotations

import functools
import struct

from tfkit.errors import ModelFileError

IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def read_model(data: bytes, *, what: str = "model"):
    """The flatbuffer's object tree (`schema.ModelT`); `what` names the file in errors."""
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        head = data[4:8] if len(data) >= 8 else data[:8]
        raise ModelFileError(f"{what} is not a TFLite flatbuffer (no {IDENTIFIER.decode()} identifier at byte 4; "
                             f"found {bytes(head)!r}, {len(data)} bytes). Pass a .tflite file written by the "
                             f"TFLite/LiteRT converter.")
    (root,) = struct.unpack_from("<I", data, 0)
    if root >= len(data):
        raise ModelFileError(f"{what} is truncated: its root table points at byte {root} of {len(data)}")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError, OverflowError,
            MemoryError) as e:
        from tfkit.isolate import plain_reason  # words about the file, never the reader's exception name

        raise ModelFileError(f"{what} is a truncated or corrupt TFLite flatbuffer ({len(data)} bytes): "
                             f"{plain_reason(e)}") from e
    if not model.subgraphs:
        raise ModelFileError(f"{what} has no subgraph: not a usable TFLite model")
    return model


def write_model(model) -> bytes:
    """Serialize a `schema.ModelT` back to .tflite bytes (with the TFL3 identifier)."""
    import flatbuffers

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


@functools.cache
def builtin_names() -> dict[int, str]:
    """Builtin operator code -> name ("CONV_2D"), from the schema."""
    ops = _schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@functools.cache
def tensor_type_names() -> dict[int, str]:
    """TensorType code -> lower-case numpy-style name ("float32", "int8")."""
    types = _schema().TensorType
    return {v: k.lower() for k, v in vars(types).items() if not k.startswith("_") and isinstance(v, int)}


def op_code(model, opcode_index: int) -> tuple[str, int, str | None]:
    """(name, version, custom_code) of an operator code. The schema keeps small builtin codes in
    `deprecatedBuiltinCode` and larger ones in `builtinCode`: the larger of the two is the op."""
    if not 0 <= opcode_index < len(model.operatorCodes or []):
        raise ModelFileError(f"an operator refers to operator code {opcode_index}, but the model has "
                             f"{len(model.operatorCodes or [])}: corrupt flatbuffer")
    code = model.operatorCodes[opcode_index]
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    name = builtin_names().get(builtin, f"BUILTIN_{builtin}")
    custom = code.customCode.decode("utf-8", "replace") if isinstance(code.customCode, bytes) else code.customCode
    return name, int(code.version or 1), custom


def op_name(model, opcode_index: int) -> str:
    name, _, custom = op_code(model, opcode_index)
    return f"CUSTOM:{custom}" if name == "CUSTOM" and custom else name


def metadata(model) -> dict[str, bytes]:
    """The model's metadata entries: name -> the bytes of the buffer it points at."""
    out = {}
    for entry in model.metadata or []:
        name = entry.name.decode("utf-8", "replace") if isinstance(entry.name, bytes) else str(entry.name)
        if not 0 <= entry.buffer < len(model.buffers or []):
            raise ModelFileError(f"metadata {name!r} points at buffer {entry.buffer} of {len(model.buffers or [])}")
        data = model.buffers[entry.buffer].data
        out[name] = b"" if data is None else bytes(bytearray(data))
    return out


def strip_names(data: bytes) -> bytes:
    """`data` without the names of its internal tensors, which the converter makes from the Keras
    layer paths ("model/s2b5_dw_relu/Relu6;model/s2b5_dw_bn/FusedBatchNormV3;..."): 13% of a
    small int8 model's bytes, 3% of its gzip. Unlike TFLite's own `strip_strings`, the model's
    input and output tensors keep their names and the signatures stay, so signature runners,
    tfkit's runner and its metadata work as before; per-tensor reports then show empty names."""
    model = read_model(data)
    for graph in model.subgraphs:
        keep = {*(graph.inputs if graph.inputs is not None else []),
                *(graph.outputs if graph.outputs is not None else [])}
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == model.subgraphs.index(graph):
                keep |= {t.tensorIndex for t in [*(sig.inputs or []), *(sig.outputs or [])]}
        for i, tensor in enumerate(graph.tensors or []):
            if i not in keep:
                tensor.name = None
    return write_model(model)
