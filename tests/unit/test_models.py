"""Model zoo: shapes, the temporal shift against a numpy reference, no Lambda layers, save/load."""
import numpy as np
import pytest

from tfkit.errors import UnknownNameError, UsageError
from tfkit.models import MODELS, VideoModelSpec, build

TINY = VideoModelSpec(num_classes=5, frames=4, size=32, alpha=0.35, stages=3, head_channels=32)


@pytest.fixture(scope="module")
def tiny_model():
    return build(TINY)


def test_spec_validation():
    with pytest.raises(UsageError, match="size"):
        VideoModelSpec(size=30)
    with pytest.raises(UsageError, match="alpha"):
        VideoModelSpec(alpha=0)
    with pytest.raises(UsageError, match="unknown model spec field"):
        VideoModelSpec.from_dict({"famly": "x"})
    with pytest.raises(UnknownNameError, match="Did you mean"):
        build(VideoModelSpec(family="tsm_mobilenetv2"))


@pytest.mark.parametrize("family", MODELS.names())
def test_every_family_builds_functional_without_lambda(family):
    from tfkit._compat.keras import keras

    model = build(VideoModelSpec(family=family, num_classes=3, frames=2, size=32, depth=0.34))
    assert isinstance(model, keras().Model) and model.__class__.__name__ == "Functional"
    assert not any(isinstance(l, keras().layers.Lambda) for l in model.layers)
    assert not any(isinstance(l, keras().layers.Conv3D) for l in model.layers)
    out = model(np.zeros((2, 2, 32, 32, 3), np.float32))
    assert out.shape == (2, 3)


def test_params_scale_with_width_and_classes():
    a = build(VideoModelSpec(num_classes=5, frames=2, size=32, alpha=0.35, depth=0.34)).count_params()
    b = build(VideoModelSpec(num_classes=5, frames=2, size=32, alpha=0.5, depth=0.34)).count_params()
    c = build(VideoModelSpec(num_classes=9, frames=2, size=32, alpha=0.35, depth=0.34)).count_params()
    assert b > a and c > a


def numpy_shift(x, frames, shift_div, causal=False):
    """Reference TSM on (B*T, H, W, C): channel block 0 takes frame t-1, block 1 takes t+1
    (causal: only block 0 moves)."""
    bt, h, w, c = x.shape
    v = x.reshape(-1, frames, h, w, c)
    out = v.copy()
    fold = c // shift_div
    out[:, 1:, ..., :fold] = v[:, :-1, ..., :fold]
    out[:, 0, ..., :fold] = 0
    if not causal:
        out[:, :-1, ..., fold:2 * fold] = v[:, 1:, ..., fold:2 * fold]
        out[:, -1, ..., fold:2 * fold] = 0
    return out.reshape(bt, h, w, c)


@pytest.mark.parametrize("causal", [False, True])
def test_temporal_shift_matches_reference(causal):
    from tfkit.models.layers import layer

    x = np.random.default_rng(0).normal(size=(2 * 4, 3, 3, 16)).astype(np.float32)
    got = np.asarray(layer("TemporalShift")(frames=4, shift_div=8, causal=causal)(x))
    np.testing.assert_array_equal(got, numpy_shift(x, 4, 8, causal))
    assert not np.array_equal(got, x)


def test_clip_order_matters(tiny_model):
    """Reversing time changes the output: the temporal shift really mixes frames."""
    x = np.random.default_rng(1).normal(size=(1, *TINY.input_shape)).astype(np.float32)
    a = np.asarray(tiny_model(x, training=False))
    b = np.asarray(tiny_model(x[:, ::-1], training=False))
    assert np.max(np.abs(a - b)) > 1e-3 * np.max(np.abs(a))


def test_save_load_round_trip(tmp_path, tiny_model):
    from tfkit.models.io import load_model, save_model

    save_model(tiny_model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).normal(size=(1, *TINY.input_shape)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(tiny_model(x)), atol=1e-6)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_load_rejects_garbage(tmp_path):
    from tfkit.errors import InputPathError
    from tfkit.models.io import load_model

    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(InputPathError, match="not a loadable"):
        load_model(tmp_path / "bad.keras")
    with pytest.raises(InputPathError, match="no model file"):
        load_model(tmp_path / "missing.keras")


def test_tfmot_can_prune_every_weighted_layer(tiny_model):
    """No Lambda and only registered layer types with weights: TFMOT wraps each one and the
    pruned model still runs (the custom time layers carry no weights and stay as they are)."""
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    from tfkit._compat.keras import keras, tfmot

    weighted = [l for l in tiny_model.layers if l.weights]
    assert all(PruneRegistry.supports(l) for l in weighted), [l.name for l in weighted if not PruneRegistry.supports(l)]
    sparsity = tfmot().sparsity.keras
    pruned = keras().models.clone_model(
        tiny_model, clone_function=lambda l: sparsity.prune_low_magnitude(l.__class__.from_config(l.get_config()))
        if l.weights else l.__class__.from_config(l.get_config()))
    x = np.zeros((1, *TINY.input_shape), np.float32)
    assert pruned(x).shape == (1, TINY.num_classes)


@pytest.mark.parametrize("causal", [False, True])
def test_frame_stack_equals_copies_shifted_in_time(causal):
    """FrameStack is the one-layer form of concatenating k copies and TemporalShift(shift_div=k)."""
    from tfkit._compat.keras import keras
    from tfkit.models.layers import layer

    K = keras()
    x = np.random.default_rng(0).normal(size=(2 * 4, 6, 6, 3)).astype(np.float32)
    copies = 2 if causal else 3
    shifted = layer("TemporalShift")(frames=4, shift_div=copies, causal=causal)(K.layers.Concatenate()([x] * copies))
    np.testing.assert_array_equal(np.asarray(layer("FrameStack")(frames=4, causal=causal)(x)), np.asarray(shifted))


@pytest.mark.parametrize("causal", [False, True])
def test_shift_and_stack_convert_to_lean_ops_with_the_same_values(causal):
    """In TFLite the shift is one DEPTHWISE_CONV_2D and the stack a planar TRANSPOSE/PAD/CONCATENATION/
    TRANSPOSE, with no per-channel slicing; float32 gives the Keras values exactly, int8 within
    its quantization, and XNNPACK takes the whole graph in one piece."""
    from tfkit._compat.keras import keras
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.models.layers import layer

    K = keras()
    inp = K.Input((6, 6, 3), batch_size=4)
    stacked = layer("FrameStack")(frames=4, causal=causal)(inp)
    model = K.Model(inp, layer("TemporalShift")(frames=4, shift_div=3, causal=causal)(stacked))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 6, 6, 3)).astype(np.float32)
    want = model(x).numpy()
    f32 = TFLiteModel(convert_keras(model, "float32"))
    assert f32.op_counts().get("DEPTHWISE_CONV_2D") == 1 and f32.op_counts().get("TRANSPOSE") == 2
    shapes = {t["index"]: tuple(t["shape"]) for t in f32.interpreter.get_tensor_details()}
    slices = [op for op in f32._graph_ops if op["op_name"] == "STRIDED_SLICE"]
    assert slices and all(shapes[op["inputs"][0]][-1] == shapes[op["outputs"][0]][-1] for op in slices)  # whole frames
    assert f32.xnnpack_partitions() == 1
    f32.interpreter.set_tensor(f32.input["index"], x)
    f32.interpreter.invoke()
    np.testing.assert_array_equal(f32.interpreter.get_tensor(f32.output["index"]), want)
    i8 = TFLiteModel(convert_keras(model, "int8", calibration=[x[None][0]]))
    i8.interpreter.set_tensor(i8.input["index"], (x / i8.input["quantization"][0] + i8.input["quantization"][1])
                              .round().clip(-128, 127).astype(np.int8))
    i8.interpreter.invoke()
    scale, zero = i8.output["quantization"]
    got = (i8.interpreter.get_tensor(i8.output["index"]).astype(np.float32) - zero) * scale
    assert np.abs(got - want).max() <= 2 * scale
