"""Weight clustering (tfkit.optimize.cluster) on a tiny zoo model: kernels keep at most `clusters`
values, the input model is untouched, clusters shrink the gzip of the flatbuffer and survive int8,
cluster-preserving QAT keeps them where plain QAT does not, bad configs and models are refused."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.data.folder import ClipSet
from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build
from tfkit.optimize.cluster import ClusterConfig

SPEC = VideoModelSpec(num_classes=3, frames=2, size=32, alpha=0.35, stages=2, head_channels=32,
                      frame_stack=True, dropout=0.0)
CLUSTERS = 4  # below every 1x1 conv's fan-in (8), so per-channel counts can fail too


def _clips(n: int, seed: int) -> ClipSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *SPEC.input_shape), dtype=np.uint8)
    return ClipSet(x, rng.integers(0, 3, n).astype(np.int64), tuple(f"c{i}" for i in range(n)), ("a", "b", "c"))


def _calibration() -> list[np.ndarray]:
    return [np.random.default_rng(i).uniform(-1, 1, (1, *SPEC.input_shape)).astype(np.float32) for i in range(4)]


@pytest.fixture(scope="module")
def model():
    """A briefly trained model: BatchNormalization moved off identity, as in a real one (an
    untrained model's zero biases would make its flatbuffer smaller than any trained model's)."""
    from tfkit._compat.keras import keras
    from tfkit.train import TrainConfig, train_classifier

    keras().utils.set_random_seed(0)
    m = build(SPEC)
    train_classifier(m, _clips(16, 7), _clips(4, 8), TrainConfig(epochs=1, batch_size=8, augment=False),
                     progress=False)
    return m


@pytest.fixture(scope="module")
def clustered(model):
    from tfkit.optimize.cluster import cluster_weights

    before = [w.copy() for w in model.get_weights()]
    result = cluster_weights(model, _clips(16, 0), _clips(6, 1),
                             ClusterConfig(clusters=CLUSTERS, epochs=2, batch_size=8), progress=False)
    return result, before


def _fan_in_above(model, names: list[str], n: int) -> list[str]:
    """Conv2D/Dense layers whose output channels each have more than n weights."""
    out = []
    for name in names:
        layer = model.get_layer(name)
        if type(layer).__name__ in ("Conv2D", "Dense") and np.prod(layer.kernel.shape[:-1]) > n:
            out.append(name)
    return out


def test_every_clustered_kernel_keeps_at_most_clusters_values(model, clustered):
    from tfkit.optimize.cluster import unique_weight_counts

    result, before = clustered
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    kinds = {type(model.get_layer(n)).__name__ for n in result.clustered_layers}
    assert kinds == {"Conv2D", "DepthwiseConv2D", "Dense"}, kinds
    counts = unique_weight_counts(result.model, result.clustered_layers)
    assert counts == result.unique_values
    assert set(counts["layers"]) == set(result.clustered_layers)
    assert 2 <= counts["max"] <= CLUSTERS, counts
    assert unique_weight_counts(model, result.clustered_layers)["max"] > 100  # the input kept its weights
    plain = [type(layer).__name__ for layer in result.model.layers]
    assert "TemporalShift" in plain and "FoldTime" in plain and not any(p.startswith("Cluster") for p in plain)
    assert result.model.count_params() == model.count_params()
    assert 0.0 <= result.val_accuracy <= 1.0


def _int8_kernels(flatbuffer: bytes) -> list[np.ndarray]:
    """The CONV_2D / FULLY_CONNECTED kernels of a flatbuffer, as stored."""
    from tfkit.convert.parity import TFLiteModel

    tflite = TFLiteModel(flatbuffer)
    weights = [op["inputs"][1] for op in tflite._graph_ops if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    return [tflite.interpreter.get_tensor(w) for w in weights]


def _per_tensor_kernel_values(flatbuffer: bytes) -> list[int]:
    """Distinct int8 values in each CONV_2D / FULLY_CONNECTED kernel of a flatbuffer."""
    return [np.unique(k).size for k in _int8_kernels(flatbuffer)]


def test_clusters_shrink_the_gzip_and_survive_int8(model, clustered):
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.prune import gzip_bytes

    result, _ = clustered
    dense_f32, clustered_f32 = convert_keras(model, "float32"), convert_keras(result.model, "float32")
    assert gzip_bytes(clustered_f32) < 0.85 * gzip_bytes(dense_f32)
    calib = _calibration()
    dense_i8 = convert_keras(model, "int8", calibration=calib)
    clustered_i8 = convert_keras(result.model, "int8", calibration=calib)
    # int8 scales are per output channel, and BN folds into each channel: clusters hold per channel.
    kernels = [k.reshape(k.shape[0], -1) for k in _int8_kernels(clustered_i8)]
    assert len(kernels) == 8 and all(k.dtype == np.int8 for k in kernels)
    per_channel = [max(np.unique(row).size for row in k) for k in kernels if k.shape[1] > CLUSTERS]
    assert len(per_channel) >= 6 and max(per_channel) <= CLUSTERS, per_channel
    assert gzip_bytes(clustered_i8) < 0.9 * gzip_bytes(dense_i8)


def test_cluster_preserving_qat_keeps_the_clusters(clustered):
    """Plain QAT fine-tuning moves every weight; TFMOT's cluster-preserving scheme trains the
    centroids instead. It keeps Dense kernels on <= clusters values, and Conv2D kernels per output
    channel (it switches to per-channel centroids when channels use the same number of values); it
    does not preserve DepthwiseConv2D clusters."""
    from tfkit.convert.qat import quantize_aware, train_qat
    from tfkit.optimize.cluster import unique_weight_counts
    from tfkit.train import TrainConfig

    result, _ = clustered
    checked = _fan_in_above(result.model, result.clustered_layers, CLUSTERS)
    depthwise = [n for n in result.clustered_layers if type(result.model.get_layer(n)).__name__ == "DepthwiseConv2D"]
    assert "logits" in checked and len(checked) >= 6, checked
    config = TrainConfig(epochs=1, batch_size=8, learning_rate=5e-3, augment=False)
    counts = {}
    for preserve in (False, True):
        qat = quantize_aware(result.model, preserve_clusters=preserve)
        assert unique_weight_counts(qat, checked)["max"] <= CLUSTERS  # the QAT copy starts clustered
        train_qat(qat, _clips(16, 4), _clips(4, 5), config, progress=False)
        counts[preserve] = (unique_weight_counts(qat, checked, per_channel=True)["layers"],
                            unique_weight_counts(qat, ["logits", *depthwise])["layers"])
    (plain_channels, plain_whole), (kept_channels, kept_whole) = counts[False], counts[True]
    assert max(kept_channels.values()) <= CLUSTERS, kept_channels
    assert kept_whole["logits"] <= CLUSTERS
    assert min(plain_channels.values()) > CLUSTERS, plain_channels
    assert plain_whole["logits"] > CLUSTERS
    assert all(kept_whole[n] > CLUSTERS for n in depthwise), kept_whole
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras

    ops = TFLiteModel(convert_keras(qat, "int8")).op_counts()  # BN folded despite strip_clustering's stale nodes
    assert not {"MUL", "QUANTIZE", "DEQUANTIZE"} & set(ops), ops


def test_sparsity_preserving_clustering_then_pcqat_keep_the_zeros(model):
    """prune -> cluster -> PCQAT: plain clustering moves zeros onto a non-zero centroid;
    preserve_sparsity pins one centroid at zero, and PCQAT keeps both zeros and clusters."""
    from tfkit._compat.keras import keras
    from tfkit.convert.qat import quantize_aware, train_qat
    from tfkit.optimize.cluster import cluster_weights, unique_weight_counts
    from tfkit.optimize.prune import kernel_sparsity
    from tfkit.train import TrainConfig

    pruned = keras().models.clone_model(model)
    pruned.set_weights(model.get_weights())
    for layer in pruned.layers:  # magnitude pruning by hand: the smaller half of each kernel
        if type(layer).__name__ in ("Conv2D", "Dense", "DepthwiseConv2D"):
            weights = layer.get_weights()
            weights[0] = np.where(np.abs(weights[0]) < np.median(np.abs(weights[0])), 0.0, weights[0])
            layer.set_weights(weights)
    result = cluster_weights(pruned, _clips(8, 2), _clips(4, 3),
                             ClusterConfig(clusters=CLUSTERS, epochs=1, batch_size=8, preserve_sparsity=True),
                             progress=False)
    names = _fan_in_above(result.model, result.clustered_layers, CLUSTERS)
    assert kernel_sparsity(result.model, names)["overall"] >= 0.49
    assert unique_weight_counts(result.model, result.clustered_layers)["max"] <= CLUSTERS
    qat = quantize_aware(result.model, preserve_clusters=True, preserve_sparsity=True)
    train_qat(qat, _clips(8, 4), _clips(4, 5), TrainConfig(epochs=1, batch_size=8, learning_rate=5e-3,
                                                           augment=False), progress=False)
    kernels = [next(w for w in layer.weights if w.name.endswith("/kernel:0")).numpy()
               for layer in qat.layers if getattr(layer, "layer", layer).name in names]
    assert len(kernels) == len(names) and min(np.mean(k == 0) for k in kernels) >= 0.49
    assert unique_weight_counts(qat, names, per_channel=True)["max"] <= CLUSTERS
    # Kernels left unclustered (skip_depthwise) keep their zeros too: fine-tuning would refill them.
    skipped = cluster_weights(pruned, _clips(8, 2), _clips(4, 3),
                              ClusterConfig(clusters=CLUSTERS, epochs=1, batch_size=8, learning_rate=5e-3,
                                            preserve_sparsity=True, skip_depthwise=True), progress=False)
    dw = [layer for layer in skipped.model.layers if type(layer).__name__ == "DepthwiseConv2D"]
    assert dw and not {layer.name for layer in dw} & set(skipped.clustered_layers)
    assert all(np.mean(np.asarray(layer.depthwise_kernel) == 0) >= 0.45 for layer in dw)
    moved = [np.mean(np.asarray(a.depthwise_kernel) != np.asarray(pruned.get_layer(a.name).depthwise_kernel))
             for a in dw]
    assert max(moved) > 0.2  # they were trained, not frozen


def test_skip_depthwise_and_custom_layers_stay_plain(model):
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    from tfkit.optimize.cluster import clusterable_layers, unique_weight_counts, wrap_for_clustering

    names = clusterable_layers(model, ClusterConfig(clusters=CLUSTERS, skip_depthwise=True))
    assert names and "logits" in names
    assert not any(type(model.get_layer(n)).__name__ == "DepthwiseConv2D" for n in names)
    # A kernel with no more values than clusters is left alone (it is clustered already).
    assert "logits" not in clusterable_layers(model, ClusterConfig(clusters=96))
    wrapped, wrapped_names = wrap_for_clustering(model, ClusterConfig(clusters=CLUSTERS, skip_depthwise=True))
    assert wrapped_names == names
    inner = {getattr(layer, "layer", layer).name: layer for layer in wrapped.layers}
    assert all(isinstance(inner[n], cluster_wrapper.ClusterWeights) for n in names)
    assert type(inner["frame_stack"]).__name__ == "FrameStack"
    assert type(inner["s0b0_dw"]).__name__ == "DepthwiseConv2D"
    with pytest.raises(UsageError, match="still wrapped for clustering"):
        unique_weight_counts(wrapped)


@pytest.mark.parametrize("init", ["linear", "density", "random", "kmeans_plus_plus"])
def test_every_centroid_init_clusters_before_any_training(model, init):
    from tfkit.optimize.cluster import strip_clustering, unique_weight_counts, wrap_for_clustering

    wrapped, names = wrap_for_clustering(model, ClusterConfig(clusters=CLUSTERS, init=init))
    counts = unique_weight_counts(strip_clustering(wrapped), names)
    assert set(counts["layers"]) == set(names) and counts["max"] <= CLUSTERS, counts


def test_depthwise_kernels_get_their_own_cluster_count(model):
    from tfkit.optimize.cluster import strip_clustering, unique_weight_counts, wrap_for_clustering

    wrapped, names = wrap_for_clustering(model, ClusterConfig(clusters=CLUSTERS, depthwise_clusters=12))
    counts = unique_weight_counts(strip_clustering(wrapped), names)["layers"]
    depthwise = {n for n in names if type(model.get_layer(n)).__name__ == "DepthwiseConv2D"}
    assert depthwise and len(depthwise) < len(names)
    assert all(CLUSTERS < counts[n] <= 12 for n in depthwise), counts
    assert all(counts[n] <= CLUSTERS for n in names if n not in depthwise), counts


@pytest.mark.parametrize("kw,needle", [
    ({"clusters": 1}, "clusters must be in [2, 1024], got 1"),
    ({"clusters": 5000}, "got 5000"),
    ({"clusters": 8.0}, "clusters must be an integer, got 8.0"),
    ({"init": "bogus"}, "unknown centroid init 'bogus'"),
    ({"clusters": 2, "preserve_sparsity": True}, "needs clusters >= 3, got 2"),
    ({"clusters": 8, "depthwise_clusters": 2, "preserve_sparsity": True}, "needs clusters >= 3, got 2"),
    ({"depthwise_clusters": 1}, "depthwise_clusters must be 0 (= clusters) or in [2, 1024], got 1"),
    ({"depthwise_clusters": 32, "skip_depthwise": True}, "contradict each other"),
    ({"epochs": 0}, "epochs=0"),
    ({"learning_rate": 0.0}, "learning_rate=0.0"),
])
def test_bad_configs_name_the_value(kw, needle):
    with pytest.raises(UsageError) as e:
        ClusterConfig(**kw)
    assert needle in str(e.value)


def test_lambda_and_subclassed_models_are_refused():
    from tests.helpers import unfollowable_models
    from tfkit.optimize.cluster import wrap_for_clustering

    lam, sub = unfollowable_models()
    with pytest.raises(UsageError, match="Lambda layer 'double'"):
        wrap_for_clustering(lam, ClusterConfig())
    with pytest.raises(UsageError, match="subclassed"):
        wrap_for_clustering(sub, ClusterConfig())


def test_fold_batchnorm_keeps_the_outputs_and_the_input_model(model):
    from tfkit.optimize.fold import fold_batchnorm

    before = [w.copy() for w in model.get_weights()]
    folded = fold_batchnorm(model)
    bns = [layer.name for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(folded.pairs) == len(bns) >= 8 and {bn for _, bn in folded.pairs} == set(bns)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in folded.model.layers)
    assert all(folded.model.get_layer(src).use_bias for src, _ in folded.pairs)
    x = _calibration()[0]
    np.testing.assert_allclose(folded.model(x, training=False), model(x, training=False), atol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert fold_batchnorm(folded.model).pairs == ()  # nothing left to fold: the same model back


def test_clusters_of_a_folded_model_survive_one_int8_scale_per_tensor(model, clustered):
    """BN folded by the converter scales each channel of a clustered kernel differently, so one
    int8 scale per tensor maps its clusters to many values; folded before clustering, each
    kernel keeps at most `clusters` int8 values, and the gzip is smaller."""
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.cluster import cluster_weights
    from tfkit.optimize.prune import gzip_bytes

    calib = _calibration()
    folded = cluster_weights(model, _clips(16, 0), _clips(6, 1), ClusterConfig(
        clusters=CLUSTERS, epochs=1, batch_size=8, fold_batchnorm=True), progress=False)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in folded.model.layers)
    unfolded_i8 = convert_keras(clustered[0].model, "int8", calibration=calib, per_channel=False)
    folded_i8 = convert_keras(folded.model, "int8", calibration=calib, per_channel=False)
    unfolded, kept = _per_tensor_kernel_values(unfolded_i8), _per_tensor_kernel_values(folded_i8)
    assert len(kept) == len(unfolded) == 8
    assert max(kept) <= CLUSTERS, kept
    assert sum(v > CLUSTERS for v in unfolded) >= 6, unfolded
    assert gzip_bytes(folded_i8) < gzip_bytes(unfolded_i8)
