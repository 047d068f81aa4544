"""Magnitude pruning (tfkit.optimize.prune) on a tiny zoo model: schedules reach their target,
2:4 structure holds, the input model is untouched, zeros survive int8, bad configs are refused."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.data.folder import ClipSet
from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build
from tfkit.optimize.prune import PruneConfig

SPEC = VideoModelSpec(num_classes=3, frames=2, size=32, alpha=0.35, stages=2, head_channels=32,
                      frame_stack=True, dropout=0.0)


def _clips(n: int, seed: int) -> ClipSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *SPEC.input_shape), dtype=np.uint8)
    return ClipSet(x, rng.integers(0, 3, n).astype(np.int64), tuple(f"c{i}" for i in range(n)), ("a", "b", "c"))


@pytest.fixture(scope="module")
def model():
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(0)
    return build(SPEC)


@pytest.fixture(scope="module")
def pruned(model):
    from tfkit.optimize.prune import prune_magnitude

    before = [w.copy() for w in model.get_weights()]
    result = prune_magnitude(model, _clips(16, 0), _clips(6, 1),
                             PruneConfig(sparsity=0.6, schedule="constant", epochs=2, batch_size=8, frequency=1),
                             progress=False)
    return result, before


def test_constant_schedule_reaches_its_target_and_leaves_the_input_alone(model, pruned):
    from tfkit.optimize.prune import kernel_sparsity

    result, before = pruned
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert kernel_sparsity(model, result.pruned_layers)["overall"] < 0.01
    assert result.pruned_layers and "logits" in result.pruned_layers
    layers = result.sparsity["layers"]
    assert set(layers) == set(result.pruned_layers)
    assert all(0.55 <= s <= 0.65 for s in layers.values()), layers
    assert not any(type(layer).__name__.startswith("PruneLowMagnitude") for layer in result.model.layers)
    assert result.model.count_params() == model.count_params()  # zeros, not removed weights


def test_zeros_survive_int8_and_shrink_the_gzip(model, pruned):
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.prune import gzip_bytes

    result, _ = pruned
    calib = [np.random.default_rng(i).uniform(-1, 1, (1, *SPEC.input_shape)).astype(np.float32) for i in range(4)]
    dense = convert_keras(model, "int8", calibration=calib)
    sparse = convert_keras(result.model, "int8", calibration=calib)
    interp = TFLiteModel(sparse).interpreter
    kernel = next(t for t in interp.get_tensor_details() if "logits" in t["name"] and t["dtype"] == np.int8
                  and len(t["shape"]) == 2)
    weights = interp.get_tensor(kernel["index"])
    assert 0.55 <= np.mean(weights == 0) <= 0.65
    # This model is tiny: int8 quantization parameters (which do not compress) dominate its file.
    assert gzip_bytes(sparse) < gzip_bytes(dense)
    dense_f32, sparse_f32 = convert_keras(model, "float32"), convert_keras(result.model, "float32")
    assert gzip_bytes(sparse_f32) < 0.85 * gzip_bytes(dense_f32)
    packed = convert_keras(result.model, "float32", sparse=True)
    assert len(packed) < len(sparse_f32)  # the sparse tensor format
    assert TFLiteModel(packed)(calib[0]).shape == (1, 3)


def test_two_of_four_structure(model):
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils

    from tfkit.optimize.prune import prune_magnitude

    result = prune_magnitude(model, _clips(8, 2), _clips(4, 3),
                             PruneConfig(m_by_n="2:4", epochs=1, batch_size=8, frequency=1), progress=False)
    layers = [result.model.get_layer(n) for n in result.pruned_layers]
    assert layers and all(type(layer).__name__ in ("Conv2D", "Dense") for layer in layers)
    checked = 0
    for layer in layers:
        kernel = layer.kernel
        if kernel.shape[-2] % 4 == 0:  # m-by-n groups run along the input channels
            assert bool(pruning_utils.is_pruned_m_by_n(kernel, m_by_n=(2, 4))), layer.name
            checked += 1
    assert checked >= 2


def test_blocks_as_tall_as_a_kernel_prune_it_weight_by_weight(model):
    """A 1x1 conv with 8 inputs has one 8x1 block per output channel; TFMOT then squeezes the
    pooled mask to 1-D and training failed. Such kernels are pruned weight by weight."""
    from tfkit.optimize.prune import block_prunable, prune_magnitude

    assert block_prunable((1, 1, 16, 24), (8, 1)) and not block_prunable((1, 1, 8, 24), (8, 1))
    assert not block_prunable((3, 3, 16, 24), (8, 1)) and not block_prunable((32, 1), (1, 1))
    tall = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"
            and tuple(layer.kernel.shape[:3]) == (1, 1, 8)]
    assert tall, "the test model needs a 1x1 conv with 8 inputs"
    result = prune_magnitude(model, _clips(8, 2), _clips(4, 3),
                             PruneConfig(sparsity=0.5, block="8x1", schedule="constant", epochs=1, batch_size=8,
                                         frequency=1), progress=False)
    for name in result.pruned_layers:
        kernel = np.asarray(result.model.get_layer(name).kernel)
        assert 0.4 <= np.mean(kernel == 0) <= 0.6, name
        if block_prunable(kernel.shape, (8, 1)) and kernel.shape[-2] % 8 == 0:
            groups = kernel.reshape(-1, 8, kernel.shape[-1]) == 0
            assert np.all(groups.all(1) | ~groups.any(1)), name
    assert all(name in result.pruned_layers for name in tall)


def test_block_sparsity_on_a_conv_net_keeps_whole_blocks_along_the_input_channels(model):
    """TFMOT alone refuses block sparsity on any 4-D kernel; 1x1 convs and Dense get whole 4x1
    blocks (contiguous in TFLite's output-major weights), other kernels weight by weight."""
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.prune import prune_magnitude

    result = prune_magnitude(model, _clips(8, 2), _clips(4, 3),
                             PruneConfig(sparsity=0.5, block="4x1", schedule="constant", epochs=1, batch_size=8,
                                         frequency=1), progress=False)
    blocked = 0
    for name in result.pruned_layers:
        kernel = np.asarray(result.model.get_layer(name).kernel)
        assert 0.4 <= np.mean(kernel == 0) <= 0.6, name
        if kernel.ndim == 2 or kernel.shape[:2] == (1, 1):
            zeros = (kernel.reshape(-1, kernel.shape[-1]) == 0)
            if zeros.shape[0] % 4 == 0:
                groups = zeros.reshape(zeros.shape[0] // 4, 4, -1)
                assert np.all(groups.all(1) | ~groups.any(1)), name  # all four zero, or none
                blocked += 1
    assert blocked >= 3
    calib = [np.random.default_rng(i).uniform(-1, 1, (1, *SPEC.input_shape)).astype(np.float32) for i in range(2)]
    interp = TFLiteModel(convert_keras(result.model, "int8", calibration=calib)).interpreter
    kernel = next(t for t in interp.get_tensor_details() if "s1b0_expand" in t["name"] and t["dtype"] == np.int8
                  and len(t["shape"]) == 4)
    stored = interp.get_tensor(kernel["index"])  # (O, 1, 1, I): runs of 4 along the last axis
    runs = (stored.reshape(stored.shape[0], -1, 4) == 0)
    assert np.all(runs.all(-1) | ~runs.any(-1)) and runs.any()


def test_depthwise_kernels_are_pruned_too_when_asked(model):
    """TFMOT's registry gives DepthwiseConv2D no prunable weight; `depthwise=True` prunes its
    kernel weight by weight (also under block sparsity), and the zeros reach the int8 file."""
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.prune import prunable_layers, prune_magnitude

    dw = [layer.name for layer in model.layers if type(layer).__name__ == "DepthwiseConv2D"]
    assert dw and not set(dw) & set(prunable_layers(model))
    before = [np.asarray(model.get_layer(n).depthwise_kernel).copy() for n in dw]
    result = prune_magnitude(model, _clips(8, 2), _clips(4, 3),
                             PruneConfig(sparsity=0.5, block="4x1", depthwise=True, schedule="constant", epochs=1,
                                         batch_size=8, frequency=1), progress=False)
    assert set(dw) <= set(result.pruned_layers)
    for name, old in zip(dw, before, strict=True):
        kernel = np.asarray(result.model.get_layer(name).depthwise_kernel)
        assert 0.45 <= np.mean(kernel == 0) <= 0.55, name
        assert np.array_equal(np.asarray(model.get_layer(name).depthwise_kernel), old)  # the input is untouched
        assert result.sparsity["layers"][name] == pytest.approx(np.mean(kernel == 0), abs=1e-4)
    calib = [np.random.default_rng(i).uniform(-1, 1, (1, *SPEC.input_shape)).astype(np.float32) for i in range(2)]
    interp = TFLiteModel(convert_keras(result.model, "int8", calibration=calib)).interpreter
    stored = [interp.get_tensor(t["index"]) for t in interp.get_tensor_details()
              if t["dtype"] == np.int8 and len(t["shape"]) == 4 and tuple(t["shape"][:3]) == (1, 3, 3)]  # not the shifts' (1, 3, 1, C)
    assert len(stored) == len(dw) and all(np.mean(k == 0) >= 0.45 for k in stored)


def test_xnnpack_policy_prunes_only_pointwise_convs(model):
    from tfkit.optimize.prune import prunable_layers, xnnpack_sparse_check

    names = prunable_layers(model, PruneConfig(policy="xnnpack"))
    assert names and all(tuple(model.get_layer(n).kernel_size) == (1, 1) for n in names)
    assert "logits" not in names
    assert xnnpack_sparse_check(model) != "ok"  # time folding: outside XNNPACK's sparse NCHW path


@pytest.mark.parametrize("kw,needle", [
    ({"sparsity": 1.0}, "sparsity must be in (0, 1), got 1.0"),
    ({"sparsity": 0.0}, "got 0.0"),
    ({"schedule": "cubic"}, "unknown pruning schedule 'cubic'"),
    ({"m_by_n": "4:2"}, "M < N"),
    ({"m_by_n": "two:four"}, "m_by_n must look like"),
    ({"block": "1x4", "m_by_n": "2:4"}, "not both"),
    ({"policy": "gpu"}, "unknown pruning policy"),
    ({"depthwise": True, "m_by_n": "2:4"}, "depthwise pruning goes weight by weight"),
    ({"depthwise": True, "policy": "xnnpack"}, "xnnpack policy"),
    ({"initial_sparsity": 0.7, "sparsity": 0.5}, "initial_sparsity"),
])
def test_bad_configs_name_the_value(kw, needle):
    with pytest.raises(UsageError) as e:
        PruneConfig(**kw)
    assert needle in str(e.value)


def test_lambda_and_subclassed_models_are_refused():
    from tests.helpers import unfollowable_models
    from tfkit.optimize.prune import wrap_for_pruning

    lam, sub = unfollowable_models()
    with pytest.raises(UsageError, match="Lambda layer 'double'"):
        wrap_for_pruning(lam, PruneConfig(), 10)
    with pytest.raises(UsageError, match="subclassed"):
        wrap_for_pruning(sub, PruneConfig(), 10)


def test_prune_preserving_qat_keeps_the_zeros(pruned):
    """Plain QAT fine-tuning refills pruned weights; TFMOT's prune-preserving scheme does not."""
    from tfkit.convert.qat import quantize_aware, train_qat
    from tfkit.train import TrainConfig

    result, _ = pruned
    config = TrainConfig(epochs=1, batch_size=8, learning_rate=5e-3, augment=False)
    zeros = {}
    for preserve in (False, True):
        qat = quantize_aware(result.model, preserve_sparsity=preserve)
        train_qat(qat, _clips(16, 4), _clips(4, 5), config, progress=False)
        kernel = np.asarray(next(layer for layer in qat.layers if getattr(layer, "layer", layer).name == "logits")
                            .layer.kernel)
        zeros[preserve] = float(np.mean(kernel == 0))
    # Plain QAT refills a good part of the zeros (less since QAT keeps BN on its moving statistics:
    # measured 0.32 left of 0.6); the prune-preserving scheme keeps them all.
    assert zeros[True] >= 0.55 and zeros[False] < 0.6 * zeros[True], zeros
    # strip_pruning leaves each conv also called by its old wrapper; BN must still fold into the
    # conv, or int8 gets float MUL/ADD (and QUANTIZE/DEQUANTIZE) around every BN.
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras

    ops = TFLiteModel(convert_keras(qat, "int8")).op_counts()
    assert not {"MUL", "QUANTIZE", "DEQUANTIZE"} & set(ops), ops
