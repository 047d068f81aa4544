"""Converter variants and the parity check, on a tiny model."""
import numpy as np
import pytest

from tfkit.convert.variants import VARIANTS
from tfkit.errors import ParityError, UnknownNameError, UsageError
from tfkit.models import VideoModelSpec, build

SPEC = VideoModelSpec(num_classes=4, frames=2, size=32, stages=3, head_channels=32)


@pytest.fixture(scope="module")
def model_and_clips():
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(0)
    model = build(SPEC)
    clips = np.random.default_rng(0).uniform(-1, 1, size=(12, *SPEC.input_shape)).astype(np.float32)
    return model, clips


@pytest.fixture(scope="module")
def flatbuffers(model_and_clips):
    from tfkit.convert.tflite import convert_keras

    model, clips = model_and_clips
    return {p: convert_keras(model, p, calibration=(c[None] for c in clips)) for p in ("float32", "int8")}


def test_variant_table():
    assert {"float32", "float16", "dynamic", "int8", "int16x8"} <= set(VARIANTS.names())
    assert all(VARIANTS.get(n).max_abs_logit_diff or VARIANTS.get(n).min_top1_agreement for n in VARIANTS)
    with pytest.raises(UnknownNameError, match="Did you mean 'int8'"):
        VARIANTS.get("int9")


def test_float32_matches_keras(model_and_clips, flatbuffers):
    from tfkit.convert.parity import check_parity

    model, clips = model_and_clips
    report = check_parity(model, flatbuffers["float32"], clips, "float32")
    assert report.passed and report.max_abs_logit_diff < 1e-4


def test_int8_is_fully_integer(model_and_clips, flatbuffers):
    from tfkit.convert.parity import TFLiteModel

    tfl = TFLiteModel(flatbuffers["int8"])
    assert tfl.input["dtype"] == np.int8 and tfl.output["dtype"] == np.int8
    assert tfl.float_activation_count() == 0
    assert "DELEGATE" not in tfl.op_counts() and "CONV_2D" in tfl.op_counts()
    assert len(flatbuffers["int8"]) < len(flatbuffers["float32"])


def test_per_tensor_int8_keeps_one_scale_per_kernel(model_and_clips, flatbuffers):
    from tfkit.convert.flatbuffer import read_model
    from tfkit.convert.tflite import convert_keras

    model, clips = model_and_clips

    def kernel_scales(fb):
        m = read_model(fb)
        return [len(t.quantization.scale) for t in m.subgraphs[0].tensors
                if t.type == 9 and t.shape is not None and len(t.shape) == 4 and m.buffers[t.buffer].data is not None
                and t.quantization is not None and t.quantization.scale is not None]  # 9: INT8 constants

    per_channel = kernel_scales(flatbuffers["int8"])
    per_tensor = kernel_scales(convert_keras(model, "int8", calibration=(c[None] for c in clips), per_channel=False))
    assert per_channel and max(per_channel) > 1
    assert len(per_tensor) == len(per_channel) and set(per_tensor) == {1}


def test_stripping_names_keeps_the_graph_its_io_names_and_signature(model_and_clips, flatbuffers):
    from ai_edge_litert.interpreter import Interpreter

    from tfkit.convert.flatbuffer import read_model, strip_names

    _, clips = model_and_clips
    named = flatbuffers["int8"]
    stripped = strip_names(named)
    assert len(stripped) < 0.95 * len(named)
    outs, io = [], []
    for fb in (named, stripped):
        it = Interpreter(model_content=fb)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        scale, zero = inp["quantization"]
        it.set_tensor(inp["index"], np.clip(np.round(clips[:1] / scale + zero), -128, 127).astype(np.int8))
        it.invoke()
        outs.append(it.get_tensor(out["index"]).copy())
        io.append((inp["name"], out["name"]))
        runner = Interpreter(model_content=fb).get_signature_runner()
        assert list(runner.get_input_details()) == ["clip"] and list(runner.get_output_details()) == ["logits"]
    assert np.array_equal(*outs) and io[0] == io[1]
    names = [t.name for t in read_model(stripped).subgraphs[0].tensors if t.name]
    assert len(names) == 2


def test_float32_has_float_activations(flatbuffers):
    from tfkit.convert.parity import TFLiteModel

    assert TFLiteModel(flatbuffers["float32"]).float_activation_count() > 0


def test_parity_fails_loudly_against_a_different_model(model_and_clips, flatbuffers):
    """A flatbuffer compared with a Keras model whose logits moved must be rejected."""
    from tfkit.convert.parity import check_parity

    model, clips = model_and_clips
    other = build(SPEC)
    other.set_weights(model.get_weights())
    kernel, bias = other.get_layer("logits").get_weights()
    other.get_layer("logits").set_weights([kernel, bias + np.array([0.5, 0, 0, 0], np.float32)])
    with pytest.raises(ParityError, match="fails parity"):
        check_parity(other, flatbuffers["float32"], clips, "float32")
    report = check_parity(other, flatbuffers["float32"], clips, "float32", raise_on_fail=False)
    assert not report.passed


def test_calibrated_precision_needs_data(model_and_clips):
    from tfkit.convert.tflite import convert_keras

    with pytest.raises(UsageError, match="calibration"):
        convert_keras(model_and_clips[0], "int8")


def test_xnnpack_partitions_and_gpu_analyzer(flatbuffers):
    from tfkit.convert.parity import TFLiteModel
    from tfkit.delegates.gpu import analyze_gpu, parse_analyzer_output

    assert TFLiteModel(flatbuffers["int8"]).xnnpack_partitions() >= 1
    report = analyze_gpu(flatbuffers["float32"])
    assert report.compatible and report.warnings == ()
    bad = parse_analyzer_output("GPU COMPATIBILITY WARNING: Not supported op CUMSUM\nOp#3 CUMSUM(T#1) -> [T#2]")
    assert not bad.compatible and bad.warnings == ("GPU COMPATIBILITY WARNING: Not supported op CUMSUM",)
