"""Weight clustering (weight sharing) with TFMOT for tfkit's video models and user tf_keras models:
every clustered kernel keeps at most `clusters` distinct values (trained centroids), so the
flatbuffer compresses well (gzip, or a delivery format that stores indices into a codebook).

Which layers are clustered is a table, not a chain of ifs: TFMOT's clustering registry (the
kernel of Conv1D/2D/3D, Conv*Transpose, Dense, SeparableConv's pointwise kernel, Embedding ...),
plus `EXTRA_CLUSTERED_WEIGHTS` for weights TFMOT lists with nothing to cluster: its registry maps
DepthwiseConv2D to no weight at all, so tfkit clusters `depthwise_kernel` itself through the same
hook TFMOT's registry installs (`skip_depthwise` turns that off). A kernel with no more values
than `clusters` is left alone, as TFMOT does for Conv2D.

As in tfkit.optimize.prune, the model is first copied with `clone_wrapped` (fresh layers, the
weights copied by name), then the copy's layers are wrapped: TFMOT initializes the centroids from
a built layer's weights, and the input model is never modified. tfkit's own layers (time folding,
temporal shift ...) stay plain.

Clusters survive post-training quantization only per output channel (int8 scales are per
channel, and BatchNormalization folded into a conv scales each channel), unless the model's BN
is folded before clustering (`fold_batchnorm`): then int8 with one scale per tensor keeps at most
`clusters` values per kernel. For QAT after clustering
use `quantize_aware(..., preserve_clusters=True)` (CQAT), which keeps Conv2D and Dense kernels on
their centroids (TFMOT does not preserve DepthwiseConv2D clusters). For prune -> cluster -> PCQAT,
cluster with `preserve_sparsity=True` and quantize with both preserve flags.

Example:
    >>> result = cluster_weights(model, data.train, data.val, ClusterConfig(clusters=16))  # doctest: +SKIP
    >>> result.unique_values["max"], result.val_accuracy
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tfkit.errors import UsageError

# tfkit name -> tfmot.clustering.keras.CentroidInitialization member
INITS = {"kmeans_plus_plus": "KMEANS_PLUS_PLUS", "linear": "LINEAR", "density": "DENSITY_BASED", "random": "RANDOM"}
# Layer class name -> the weight tfkit clusters where TFMOT's registry lists none.
EXTRA_CLUSTERED_WEIGHTS = {"DepthwiseConv2D": "depthwise_kernel"}
MAX_CLUSTERS = 1024  # TFMOT's cluster-preserving QAT gives up on kernels with more centroids


@dataclass(frozen=True)
class ClusterConfig:
    """How many centroids per kernel, how to place them, how long to fine-tune.
    `preserve_sparsity` keeps a pruned model's zeros (one centroid pinned at zero; needs clusters >= 3),
    also in the sparse kernels it does not cluster (`skip_depthwise`): their zeros are re-applied
    after every training step, or fine-tuning would refill them.
    `fold_batchnorm` merges each BatchNormalization into the layer before it first
    (tfkit.optimize.fold), so the clusters are those of the kernel that runs and survive int8
    with one scale per tensor (`convert --no-per-channel`), the smallest gzip."""

    clusters: int = 16
    init: str = "kmeans_plus_plus"
    epochs: int = 2
    learning_rate: float = 3e-4
    batch_size: int = 16
    augment: bool = True
    seed: int = 0
    skip_depthwise: bool = False
    depthwise_clusters: int = 0  # centroids for DepthwiseConv2D kernels (9 weights a channel, the most sensitive); 0 = clusters
    preserve_sparsity: bool = False
    fold_batchnorm: bool = False

    def __post_init__(self):
        if isinstance(self.clusters, bool) or not isinstance(self.clusters, int):
            raise UsageError(f"clusters must be an integer, got {self.clusters!r}")
        if not 2 <= self.clusters <= MAX_CLUSTERS:
            raise UsageError(f"clusters must be in [2, {MAX_CLUSTERS}], got {self.clusters}")
        if self.depthwise_clusters and not 2 <= self.depthwise_clusters <= MAX_CLUSTERS:
            raise UsageError(f"depthwise_clusters must be 0 (= clusters) or in [2, {MAX_CLUSTERS}], "
                             f"got {self.depthwise_clusters}")
        if self.depthwise_clusters and self.skip_depthwise:
            raise UsageError("depthwise_clusters and skip_depthwise contradict each other: set one")
        fewest = min(self.clusters, self.depthwise_clusters or self.clusters)
        if self.preserve_sparsity and fewest < 3:
            raise UsageError(f"preserve_sparsity pins one centroid at zero and needs clusters >= 3, got {fewest}")
        if self.init not in INITS:
            raise UsageError(f"unknown centroid init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise UsageError(f"epochs and batch_size must be >= 1 and learning_rate > 0, got epochs={self.epochs}, "
                             f"batch_size={self.batch_size}, learning_rate={self.learning_rate}")

    def clusters_for(self, layer) -> int:
        if type(layer).__name__ == "DepthwiseConv2D" and self.depthwise_clusters:
            return self.depthwise_clusters
        return self.clusters

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClusterResult:
    model: object  # stripped of clustering wrappers: a plain tf_keras model with shared weights
    val_accuracy: float
    train_accuracy: float
    clustered_layers: list[str] = field(default_factory=list)
    unique_values: dict = field(default_factory=dict)  # {"layers": {name: distinct values}, "max": int}
    folded: tuple = ()  # (layer, BatchNormalization) pairs folded first (`fold_batchnorm`)


def _clustered_weight(layer, config: ClusterConfig | None = None) -> str | None:
    """The attribute name of the weight clustering shares in `layer`, or None."""
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry

    kind = type(layer).__name__
    if kind in EXTRA_CLUSTERED_WEIGHTS:
        return None if config is not None and config.skip_depthwise else EXTRA_CLUSTERED_WEIGHTS[kind]
    registry = clustering_registry.ClusteringRegistry
    # RNN and attention layers sit outside this map; their several weights are not handled here.
    names = registry._LAYERS_WEIGHTS_MAP.get(type(layer))
    return names[0] if names and len(names) == 1 else None


def clusterable_layers(model, config: ClusterConfig = ClusterConfig()) -> list[str]:
    """Names of the layers `config` clusters: a trainable weight in the table (TFMOT's registry
    plus EXTRA_CLUSTERED_WEIGHTS) with more values than `config.clusters`."""
    from tfkit._compat.keras import tfmot

    tfmot()
    names = []
    for layer in model.layers:
        attr = _clustered_weight(layer, config) if layer.trainable_weights else None
        weight = getattr(layer, attr, None) if attr else None
        if weight is not None and int(np.prod(weight.shape)) > config.clusters_for(layer):
            names.append(layer.name)
    return names


def _depthwise_hook(layer, attr: str):
    def get_clusterable_weights():
        return [(attr, getattr(layer, attr))]

    return get_clusterable_weights


def _experimental_cluster():
    """TFMOT's cluster_weights with `preserve_sparsity` (the public one lacks the flag)."""
    from tfkit._compat.keras import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster

    return cluster


def wrap_for_clustering(model, config: ClusterConfig = ClusterConfig()):
    """A copy of `model` with every clusterable layer wrapped by TFMOT's `cluster_weights`
    (centroids initialized from the trained weights; `model` untouched). Returns (copy, names).
    Train it in this process and keep the stripped model: a DepthwiseConv2D wrapper's hook does
    not survive serialization."""
    from tfkit._compat.keras import keras, tfmot
    from tfkit.models.clone import clone_wrapped
    from tfkit.models.layers import custom_objects
    from tfkit.optimize.graph import check_functional

    check_functional(model, "clustering")
    K, C = keras(), tfmot().clustering.keras
    experimental = _experimental_cluster()
    names = clusterable_layers(model, config)
    if not names:
        raise UsageError(f"{model.name!r} has no layer with a kernel of more than {config.clusters} values to cluster")
    init = getattr(C.CentroidInitialization, INITS[config.init])
    # A private copy whose built layers (weights in place) are then wrapped: TFMOT places the
    # centroids when a wrapper is built, from the wrapped layer's current weights.
    copy = clone_wrapped(model, lambda fresh, original: fresh, custom_objects())
    wanted = set(names)

    def wrap(layer):
        if layer.name not in wanted:
            return layer
        wrapper = experimental.cluster_weights(
            layer, number_of_clusters=config.clusters_for(layer), cluster_centroids_init=init,
            preserve_sparsity=config.preserve_sparsity)
        attr = EXTRA_CLUSTERED_WEIGHTS.get(type(layer).__name__)
        if attr:  # the hook TFMOT's registry sets, pointed at the weight it leaves out
            wrapper.layer.get_clusterable_weights = _depthwise_hook(wrapper.layer, attr)
        return wrapper

    with K.utils.custom_object_scope(custom_objects()):
        wrapped = K.models.clone_model(copy, clone_function=wrap)
    return wrapped, names


SPARSE = 0.1  # a kernel with at least this share of exact zeros was pruned (trained ones have ~none)


def _hold_zeros(model, clustered: set):
    """A Keras callback that puts back the zeros of every sparse kernel clustering leaves alone
    (a skipped depthwise kernel, a layer with too few values), after each training step."""
    from tfkit._compat.keras import keras

    held = []
    for layer in model.layers:
        if layer.name in clustered:
            continue
        for attr in ("kernel", "depthwise_kernel"):
            weight = getattr(layer, attr, None)
            if weight is not None and hasattr(weight, "assign") and np.mean(np.asarray(weight) == 0) >= SPARSE:
                held.append((weight, (np.asarray(weight) != 0).astype(np.asarray(weight).dtype)))

    class HoldZeros(keras().callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for weight, mask in held:
                weight.assign(weight * mask)

    return HoldZeros()


def strip_clustering(model):
    """The plain tf_keras model behind a clustering-wrapped one, with the clustered weights."""
    from tfkit._compat.keras import keras, tfmot
    from tfkit.models.layers import custom_objects

    with keras().utils.custom_object_scope(custom_objects()):
        return tfmot().clustering.keras.strip_clustering(model)


def _distinct(w: np.ndarray, depthwise: bool, per_channel: bool) -> int:
    if not per_channel:
        return int(np.unique(w).size)
    # Output channels: the last axis (HWIO, (in, out)); a depthwise kernel's channels x multiplier.
    spatial = 2 if depthwise else w.ndim - 1
    columns = w.reshape(int(np.prod(w.shape[:spatial])), -1)
    return max(int(np.unique(columns[:, c]).size) for c in range(columns.shape[1]))


def unique_weight_counts(model, names: list[str] | None = None, *, per_channel: bool = False) -> dict:
    """Distinct values in each named layer's clustered weight (kernel, depthwise_kernel,
    pointwise_kernel ...: see clusterable_layers) and the largest count; `per_channel`: the most
    in any one output channel (what survives BatchNormalization folding and per-channel int8
    scales). Default: every layer with such a weight. Works on plain models and on QAT models
    (the kernel variable inside each QuantizeWrapper); strip a clustering-wrapped model first.

    Example:
        >>> unique_weight_counts(result.model)["max"] <= 16  # doctest: +SKIP
    """
    from tfkit._compat.keras import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    layers = {}
    for layer in model.layers:
        if isinstance(layer, cluster_wrapper.ClusterWeights):
            raise UsageError(f"layer {layer.name!r} is still wrapped for clustering; count after "
                             "tfkit.optimize.cluster.strip_clustering(model)")
        inner = getattr(layer, "layer", layer)
        if names is not None and inner.name not in names:
            continue
        kind = type(inner).__name__
        attr = _clustered_weight(inner) or "kernel"
        # By variable name: a QAT wrapper swaps the layer's attribute for a fake-quantized tensor.
        weight = next((w for w in layer.weights if w.name.split("/")[-1].split(":")[0] == attr), None)
        if weight is not None:
            layers[inner.name] = _distinct(np.asarray(weight), kind == "DepthwiseConv2D", per_channel)
    missing = sorted(set(names or ()) - set(layers))
    if missing:
        raise UsageError(f"no clustered weight found for layer(s) {missing} in {model.name!r}")
    return {"layers": layers, "max": max(layers.values(), default=0)}


def cluster_weights(model, train, val, config: ClusterConfig = ClusterConfig(), *, progress: bool = True,
                    symmetries: dict | None = None) -> ClusterResult:
    """Cluster `model`'s kernels to `config.clusters` shared values while fine-tuning on `train`
    (a ClipSet), then strip the wrappers. Returns a new model; `model` is not modified."""
    from tfkit.train import TrainConfig, reproducible, train_classifier

    reproducible(config.seed)  # k-means++ and random centroids are drawn when the wrappers are built
    folded = ()
    if config.fold_batchnorm:
        from tfkit.optimize.fold import fold_batchnorm

        result = fold_batchnorm(model)
        model, folded = result.model, result.pairs
    wrapped, names = wrap_for_clustering(model, config)
    trained = train_classifier(
        wrapped, train, val,
        TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                    augment=config.augment, seed=config.seed, weight_decay=0.0),  # decay would pull centroids to 0
        progress=progress, symmetries=symmetries,
        callbacks=[_hold_zeros(wrapped, set(names))] if config.preserve_sparsity else None)
    stripped = strip_clustering(trained.model)
    return ClusterResult(stripped, trained.val_accuracy, trained.train_accuracy, names,
                         unique_weight_counts(stripped, names), folded)
