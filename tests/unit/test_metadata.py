"""tfkit metadata inside the .tflite (tfkit.convert.metadata), on tiny converted models."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tfkit.convert import metadata as md
from tfkit.convert.flatbuffer import metadata, read_model, write_model
from tfkit.convert.metadata import (
    InputSpec,
    ModelMetadata,
    StreamLayout,
    board_runtime_verdict,
    describe,
    describe_file,
    embed_metadata,
    metadata_for,
    read_metadata,
    recommended_delegate,
)
from tfkit.errors import ModelFileError
from tfkit.models import VideoModelSpec, build

SPEC = VideoModelSpec(num_classes=3, frames=4, size=32, alpha=0.35, stages=2, head_channels=16)
CONVERTER_ENTRIES = ("min_runtime_version", "CONVERSION_METADATA")
STATE = {"name": "shift_1", "shape": [4, 4, 8], "kind": "tsm",
         "quantization": {"state": "shift_1", "dtype": "int8", "input": (0.1, -3.0), "output": (0.2, 1.0),
                          "same": False}}


def _meta(labels=("left", "right", "still"), **kw) -> ModelMetadata:
    fields = {"labels": labels, "normalization": "symmetric", "pixel_scale": 2 / 255, "pixel_offset": -1.0,
              "frames": 4, "size": 32, "stride": 2, "fps": None, "form": "clip", "precision": "float32",
              "input": InputSpec("clip", (1, 4, 32, 32, 3), "float32"), "stream": None,
              "recommended_delegate": "xnnpack", "model": SPEC.to_dict(), "tfkit_version": "0.1.0"}
    return ModelMetadata(**{**fields, **kw})


STREAM_META = {"form": "stream", "precision": "int8", "input": InputSpec("frame", (1, 32, 32, 3), "int8", (0.0078, -1)),
               "stream": StreamLayout("frame", "logits", (STATE,), True), "fps": 12.5}


@pytest.fixture(scope="module")
def flatbuffers() -> dict[str, bytes]:
    from tfkit._compat.keras import keras
    from tfkit.convert.tflite import convert_keras

    keras().utils.set_random_seed(0)
    model = build(SPEC)
    clips = np.random.default_rng(0).uniform(-1, 1, size=(4, *SPEC.input_shape)).astype(np.float32)
    return {p: convert_keras(model, p, calibration=(c[None] for c in clips)) for p in ("float32", "int8")}


@pytest.fixture(scope="module")
def foreign() -> bytes:
    """A plain tf_keras Dense model converted by TFLite directly: no tfkit metadata."""
    import tensorflow as tf

    from tfkit._compat.keras import keras

    K = keras()
    x = inp = K.Input((6,), name="features")
    model = K.Model(inp, K.layers.Dense(2, name="out")(x))
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _with_entry(flatbuffer: bytes, payload: bytes) -> bytes:
    """`flatbuffer` with its `tfkit` entry's bytes replaced by `payload` (a damaged entry)."""
    model = read_model(embed_metadata(flatbuffer, _meta()))
    entry = next(m for m in model.metadata if m.name in (b"tfkit", "tfkit"))
    model.buffers[entry.buffer].data = np.frombuffer(payload, np.uint8)
    return write_model(model)


@pytest.mark.parametrize("extra", [{}, STREAM_META], ids=["clip", "stream"])
def test_embed_then_read_gives_the_same_metadata(flatbuffers, extra):
    meta = _meta(**extra)
    assert ModelMetadata.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    embedded = embed_metadata(flatbuffers["float32"], meta)
    assert read_metadata(embedded) == meta
    got = describe(embedded)["tfkit"]
    assert got == meta.to_dict() and got["labels"] == ["left", "right", "still"]
    if meta.stream:
        assert got["stream"]["states"][0]["quantization"]["input"] == [0.1, -3.0]


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_embedded_model_runs_with_bit_identical_outputs(flatbuffers, precision):
    from ai_edge_litert.interpreter import Interpreter

    original = flatbuffers[precision]
    embedded = embed_metadata(original, _meta(precision=precision))
    assert embedded != original and len(embedded) > len(original)
    rng = np.random.default_rng(1)
    outputs = []
    for data in (original, embedded):
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        outputs.append([])
        for seed in range(3):
            rng = np.random.default_rng(seed)
            dtype = np.dtype(inp["dtype"])
            x = (rng.uniform(-1, 1, inp["shape"]) if dtype.kind == "f"
                 else rng.integers(-128, 128, inp["shape"])).astype(dtype)
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            outputs[-1].append(interpreter.get_tensor(out["index"]).copy())
    for a, b in zip(*outputs, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.ptp(np.stack(outputs[0]).astype(np.float64)) > 0  # the inputs did reach the logits


def test_replacing_keeps_one_entry_and_the_converters_own(flatbuffers):
    original = flatbuffers["int8"]
    before = metadata(read_model(original))
    once = embed_metadata(original, _meta(labels=("a", "b", "c")))
    twice = embed_metadata(once, _meta(labels=("x", "y", "z")))
    model = read_model(twice)
    names = [m.name.decode() if isinstance(m.name, bytes) else m.name for m in model.metadata]
    assert names.count("tfkit") == 1 and read_metadata(twice).labels == ("x", "y", "z")
    assert all(metadata(model)[k] == before[k] for k in CONVERTER_ENTRIES)
    assert len(model.buffers) == len(read_model(once).buffers)  # the old entry's buffer was reused
    assert len(twice) == len(once)
    assert describe(twice)["min_runtime_version"] == describe(original)["min_runtime_version"]


def test_foreign_model_has_no_metadata_but_describes(foreign):
    assert read_metadata(foreign) is None
    info = describe(foreign)
    assert info["tfkit"] is None
    assert [(t["name"], t["shape"], t["dtype"]) for t in info["inputs"]] == [("features", [1, 6], "float32")]
    assert info["inputs"][0]["shape_signature"] == [-1, 6] and info["outputs"][0]["shape"] == [1, 2]
    assert [op["name"] for op in info["ops"]] == ["FULLY_CONNECTED"] and info["ops"][0]["version"] >= 1
    runtime = info["min_runtime_version"]
    assert runtime and "\0" not in runtime and info["tflite_runtime_2_14"]["verdict"] in ("yes", "no")
    assert set(CONVERTER_ENTRIES) <= set(info["metadata_entries"])


@pytest.mark.parametrize("payload,needle", [
    (b"{not json", "not valid UTF-8 JSON"),
    (b"\xff\xfe\x00", "not valid UTF-8 JSON"),
    (b"[" * 100_000, "not valid UTF-8 JSON"),
    (b"[1, 2]", "must hold a JSON object"),
    (b'{"labels": []}', "no integer schema_version"),
    (b'{"schema_version": 99}', "upgrade tfkit"),
    (b'{"schema_version": 1, "labels": []}', "lacks field"),
])
def test_a_damaged_entry_is_a_model_file_error_naming_it(flatbuffers, payload, needle):
    bad = _with_entry(flatbuffers["float32"], payload)
    for reader in (read_metadata, describe):
        with pytest.raises(ModelFileError, match=needle) as info:
            reader(bad)
        assert "metadata entry 'tfkit'" in str(info.value)


def test_ill_typed_fields_are_refused():
    d = _meta().to_dict()
    for key, value in (("frames", "4"), ("labels", "left"), ("form", "video"), ("stream", {"frame_input": 1}),
                       ("input", {**d["input"], "quantization": [1.0]}), ("pixel_scale", True)):
        with pytest.raises(ModelFileError, match="invalid|lacks"):
            ModelMetadata.from_dict({**d, key: value})


def test_board_runtime_verdict():
    assert [board_runtime_verdict(v)["verdict"] for v in ("1.14.0", "2.14.0", "2.14", "2.15.0", "2.20.0-rc1")] == \
        ["yes", "yes", "yes", "no", "no"]
    assert board_runtime_verdict("1.6.0")["ok"] is True and board_runtime_verdict("2.16.1")["ok"] is False
    for missing in (None, "", "garbage"):
        verdict = board_runtime_verdict(missing)
        assert verdict["ok"] is False and verdict["verdict"] == "unknown" and "unknown" in verdict["reason"]


def test_int8_describes_its_runtime_and_quantized_io(flatbuffers):
    info = describe(flatbuffers["int8"])
    (inp,), (out,) = info["inputs"], info["outputs"]
    assert (inp["name"], inp["dtype"], out["name"], out["dtype"]) == ("clip", "int8", "logits", "int8")
    assert isinstance(inp["quantization"], list) and inp["quantization"][0] > 0
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {op["name"] for op in info["ops"]}
    assert md._version_tuple(info["min_runtime_version"]) is not None


def test_recommended_delegate_and_metadata_for():
    assert [recommended_delegate(p) for p in ("float32", "float16", "dynamic", "int8", "int16x8")] == \
        ["xnnpack", "gpu", "xnnpack", "xnnpack", "xnnpack"]
    clip = {"frames": 4, "size": 32, "stride": 2, "fps": None, "normalization": "unit"}
    spec = {"model": SPEC.to_dict(), "precision": "int8", "form": "stream",
            "input": {"name": "frame", "shape": [1, 32, 32, 3], "dtype": "int8", "quantization": [0.5, -2.0]},
            "stream": {"frame_input": "frame", "logits_output": "logits", "states": [STATE],
                       "requantize_states": True}}
    meta = metadata_for(spec, {"clip": clip, "classes": ["a", "b", "c"]})
    assert meta.labels == ("a", "b", "c")  # untrained model: the dataset's classes, their count fits
    assert (meta.pixel_scale, meta.pixel_offset, meta.input.quantization) == (1 / 255, 0.0, (0.5, -2))
    assert meta.stream.states[0]["name"] == "shift_1" and meta.stream.requantize_states
    assert metadata_for(spec, {"clip": clip, "classes": ["a", "b"]}).labels == ()  # count differs
    assert metadata_for({**spec, "classes": ["p", "q", "r"]}, {"clip": clip, "classes": ["a"]}).labels == \
        ("p", "q", "r")
    # Converted without a dataset: a trained model's own clip spec, else normalization unknown.
    assert metadata_for({**spec, "clip": clip}).normalization == "unit"
    user = {"precision": "float32", "form": "clip",
            "input": {"name": "x", "shape": [1, 6, 48, 48, 3], "dtype": "float32", "quantization": [0.0, 0]}}
    meta = metadata_for(user)
    assert (meta.normalization, meta.pixel_scale, meta.frames, meta.size, meta.labels, meta.model) == \
        (None, None, 6, 48, (), {})
    assert ModelMetadata.from_dict(meta.to_dict()) == meta


def test_child_process_reports_errors_and_survives_crashes(tmp_path, flatbuffers, monkeypatch):
    good = tmp_path / "m.tflite"
    good.write_bytes(flatbuffers["int8"])
    assert describe_file(good)["outputs"][0]["name"] == "logits"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x08\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    with pytest.raises(ModelFileError, match="bad.tflite"):
        describe_file(bad)
    monkeypatch.setattr(md, "child_command", lambda path: [sys.executable, "-c",
                                                           "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    with pytest.raises(ModelFileError, match="crashed the reader process .SIGSEGV"):
        describe_file(good)
    monkeypatch.setattr(md, "child_command", lambda path: [sys.executable, "-c", "import time; time.sleep(30)"])
    with pytest.raises(ModelFileError, match="took longer than 0.5 s"):
        describe_file(good, timeout_s=0.5)


def test_module_main_prints_one_json_line(tmp_path, flatbuffers):
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_metadata(flatbuffers["float32"], _meta()))
    out = subprocess.run([sys.executable, "-m", "tfkit.convert.metadata", str(path)], capture_output=True,
                         text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["describe"]["tfkit"]["labels"] == ["left", "right", "still"]


def test_the_board_runner_reads_the_entry_without_flatbuffers(tmp_path, flatbuffers, foreign):
    """runner.py's struct reader agrees with the schema reader, and never raises on damaged files."""
    import importlib.util

    from tfkit.bench.devices import runner_script

    module_spec = importlib.util.spec_from_file_location("board_runner", runner_script())
    runner = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(runner)
    embedded = embed_metadata(flatbuffers["int8"], _meta(**STREAM_META))
    cases = {"tfkit": embedded, "twice": embed_metadata(embedded, _meta()), "foreign": foreign,
             "bad_json": _with_entry(flatbuffers["float32"], b"{oops"), "truncated": embedded[:embedded.index(b'"labels"') + 4],
             "empty": b"", "text": b"hello, not a model"}
    got = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        got[name] = runner.read_tfkit_metadata(str(tmp_path / name))
    assert got["tfkit"] == _meta(**STREAM_META).to_dict() and got["twice"] == _meta().to_dict()
    assert got["foreign"] is None
    for name in ("bad_json", "truncated", "empty", "text"):
        assert "unreadable tfkit metadata" in (got[name] or {}).get("error", ""), (name, got[name])
