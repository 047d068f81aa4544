"""Magnitude pruning with TFMOT for tfkit's video models and user tf_keras models: constant or
polynomial sparsity schedules, block sparsity, m-by-n (2:4) sparsity, and an XNNPACK-sparse
policy (1x1 convolutions only); per-layer sparsity and gzip size reports.

TFMOT's whole-model `prune_low_magnitude` refuses any model with a layer it does not know (tfkit's
time-folding and temporal-shift layers, a user's Rescaling...). Here the model is cloned with fresh
layers, the prunable ones wrapped and the rest left as they are, and the trained weights copied by
layer name: the input model is never modified (wrapping the original layer objects would prune
their weights in place).

Pruning zeroes weights; it does not make a model faster on its own (see tfkit.optimize.structured
for channel and block removal). Zeros survive post-training int8 exactly (symmetric weight
quantization maps 0 to 0); for QAT after pruning use `quantize_aware(..., preserve_sparsity=True)`.

Example:
    >>> result = prune_magnitude(model, data.train, data.val, PruneConfig(sparsity=0.5))  # doctest: +SKIP
    >>> result.sparsity["overall"], result.val_accuracy
"""
from __future__ import annotations

import functools
import gzip
from dataclasses import asdict, dataclass, field

import numpy as np

from tfkit.errors import UsageError
from tfkit.optimize.graph import check_functional

SCHEDULES = ("constant", "polynomial")
POLICIES = ("all", "xnnpack")
EXTRA_PRUNED_WEIGHTS = {"DepthwiseConv2D": "depthwise_kernel"}  # TFMOT's registry maps these to no weight


def _parse_pair(text: str, sep: str, what: str) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        a, b = (int(v) for v in text.lower().split(sep))
    except ValueError:
        raise UsageError(f"{what} must look like 'A{sep}B' with integers, got {text!r}") from None
    if a < 1 or b < 1:
        raise UsageError(f"{what} needs positive sizes, got {text!r}")
    return a, b


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how long to fine-tune. `m_by_n` ("2:4": at most 2 non-zeros in every 4
    consecutive input-channel weights) replaces the sparsity target; `block` ("AxB": A input by B
    output channels) prunes whole blocks of 1x1-conv and Dense kernels (other kernels weight by
    weight); TFLite stores those kernels output-major, so "4x1" blocks are contiguous runs there;
    policy "xnnpack" prunes only 1x1 convolutions, the layers XNNPACK's sparse inference speeds up;
    `depthwise` also prunes DepthwiseConv2D kernels (weight by weight, same schedule), which TFMOT
    leaves out: in a MobileNet they are ~15% of the weights but, unpruned, a quarter of a sparse
    int8 file's gzip bytes."""

    sparsity: float = 0.5
    schedule: str = "polynomial"
    initial_sparsity: float = 0.0  # polynomial schedule: where it starts
    m_by_n: str = ""
    block: str = ""
    policy: str = "all"
    depthwise: bool = False
    epochs: int = 4
    learning_rate: float = 5e-4
    batch_size: int = 16
    frequency: int = 5  # prune every N training steps
    augment: bool = True
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.sparsity < 1.0:
            raise UsageError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if not 0.0 <= self.initial_sparsity < self.sparsity:
            raise UsageError(f"initial_sparsity must be in [0, sparsity={self.sparsity}), got {self.initial_sparsity}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown pruning schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.policy not in POLICIES:
            raise UsageError(f"unknown pruning policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        pair = _parse_pair(self.m_by_n, ":", "m_by_n")
        if pair and pair[0] >= pair[1]:
            raise UsageError(f"m_by_n keeps M of every N weights and needs M < N, got {self.m_by_n!r}")
        _parse_pair(self.block, "x", "block")
        if pair and self.block:
            raise UsageError("choose one of m_by_n and block sparsity, not both")
        if self.depthwise and (pair or self.policy == "xnnpack"):
            raise UsageError("depthwise pruning goes weight by weight to the sparsity target: it does not combine "
                             "with m_by_n (Conv2D/Dense only) or the xnnpack policy (1x1 convolutions only)")
        if self.epochs < 1 or self.batch_size < 1 or self.frequency < 1 or not self.learning_rate > 0:
            raise UsageError("epochs, batch_size and frequency must be >= 1 and learning_rate > 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PruneResult:
    model: object  # stripped of pruning wrappers: a plain tf_keras model with zeroed weights
    val_accuracy: float
    train_accuracy: float
    sparsity: dict  # {"overall": fraction, "layers": {name: fraction}} over pruned kernels
    pruned_layers: list[str] = field(default_factory=list)
    xnnpack_sparse_check: str = ""  # TFMOT's XNNPACK-sparse graph check: "ok" or why not


def _is_pointwise(layer) -> bool:
    return (type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1) and layer.groups == 1)


def prunable_layers(model, config: PruneConfig = PruneConfig()) -> list[str]:
    """Names of the layers `config` prunes: those with a kernel TFMOT prunes (Conv, Dense, ...;
    TFMOT lists DepthwiseConv2D and BatchNormalization with no prunable weight, and applies m_by_n
    to Conv2D/Dense only); DepthwiseConv2D too with `config.depthwise`."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    from tfkit._compat.keras import tfmot

    tfmot()
    names = []
    for layer in model.layers:
        registry = prune_registry.PruneRegistry
        if config.depthwise and type(layer).__name__ in EXTRA_PRUNED_WEIGHTS and layer.trainable_weights:
            names.append(layer.name)
            continue
        if not layer.weights or not registry.supports(layer) or not registry._LAYERS_WEIGHTS_MAP.get(type(layer)):
            continue
        kind = type(layer).__name__
        if config.policy == "xnnpack" and not _is_pointwise(layer):
            continue
        if config.m_by_n and kind not in ("Conv2D", "Dense"):
            continue
        names.append(layer.name)
    return names


def _schedule(config: PruneConfig, total_steps: int):
    from tfkit._compat.keras import tfmot

    S = tfmot().sparsity.keras
    end = max(int(total_steps * 0.75), 1)  # reach the target, then fine-tune at it
    if config.schedule == "constant":
        return S.ConstantSparsity(config.sparsity, begin_step=0, frequency=config.frequency)
    return S.PolynomialDecay(config.initial_sparsity, config.sparsity, begin_step=0, end_step=end,
                             frequency=config.frequency)


def _squeezes_to_2d(shape: tuple) -> bool:
    """A 1x1 convolution kernel (1, 1, I, O) with I, O > 1."""
    return len(shape) == 4 and shape[:2] == (1, 1) and shape[2] > 1 and shape[3] > 1


def block_prunable(shape: tuple, block: tuple[int, int] = (1, 1)) -> bool:
    """Whether `PruneConfig(block=...)` prunes a kernel of this shape in `block` blocks (Dense and
    1x1 conv kernels with more than one block along each axis) rather than weight by weight.
    TFMOT squeezes a one-block-wide pooled mask to 1-D and then fails ("Input tensor must be rank
    2"): a 1x1 conv with 16 inputs could not take 16x1 blocks."""
    if not (len(shape) == 2 or _squeezes_to_2d(shape)):
        return False
    rows, cols = shape[-2], shape[-1]
    return -(-rows // block[0]) > 1 and -(-cols // block[1]) > 1


def _weight_hook(layer, attr: str):
    def get_prunable_weights():
        return [getattr(layer, attr)]

    return get_prunable_weights


@functools.cache
def _squeezed_block_wrapper():
    """TFMOT's PruneLowMagnitude, made to accept block sparsity on 1x1 Conv2D kernels.

    TFMOT's block mask already squeezes a kernel to 2-D, pools it in blocks and reshapes the mask
    back (pruning_impl.Pruning._maybe_update_block_mask), but its constructor refuses every weight
    that is not 2-D before squeezing, so block sparsity failed on any conv net. This wrapper builds
    the pruning object with (1, 1) blocks and then sets the real block size; schedule, masks,
    UpdatePruningStep and strip_pruning are TFMOT's own (it is a PruneLowMagnitude)."""
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    from tfkit._compat.keras import tfmot

    tfmot()

    class PruneLowMagnitudeSqueezed(pruning_wrapper.PruneLowMagnitude):
        def build(self, input_shape):
            block, self.block_size = self.block_size, (1, 1)
            try:
                super().build(input_shape)
            finally:
                self.block_size = block
            self.pruning_obj._block_size = list(block)

    return PruneLowMagnitudeSqueezed


def wrap_for_pruning(model, config: PruneConfig, total_steps: int):
    """A clone of `model` with every prunable layer wrapped for TFMOT magnitude pruning (the
    weights copied; `model` untouched). Returns (clone, names of wrapped layers)."""
    from tfkit._compat.keras import tfmot
    from tfkit.models.clone import clone_wrapped
    from tfkit.models.layers import custom_objects

    check_functional(model, "pruning")
    S = tfmot().sparsity.keras
    names = set(prunable_layers(model, config))
    if not names:
        raise UsageError(f"{model.name!r} has no layer this pruning config can prune (policy {config.policy!r})")
    kw: dict = {"pruning_schedule": _schedule(config, total_steps)}
    if config.m_by_n:
        kw["sparsity_m_by_n"] = _parse_pair(config.m_by_n, ":", "m_by_n")
    if config.block:
        kw["block_size"] = _parse_pair(config.block, "x", "block")

    def wrap(fresh, original):
        if original.name not in names:
            return fresh
        layer_kw = dict(kw)
        attr = EXTRA_PRUNED_WEIGHTS.get(type(original).__name__)
        if attr:  # TFMOT's registry gives it no prunable weight; its wrapper asks this hook at build
            layer_kw.pop("block_size", None)
            wrapper = S.prune_low_magnitude(fresh, **layer_kw)
            wrapper.layer.get_prunable_weights = _weight_hook(wrapper.layer, attr)
            return wrapper
        if config.block:
            shape = tuple(original.kernel.shape) if type(original).__name__ in ("Conv2D", "Dense") else ()
            if not block_prunable(shape, kw["block_size"]):
                layer_kw.pop("block_size")  # 3x3, depthwise and one-block-wide kernels: weight by weight
            elif _squeezes_to_2d(shape):
                return _squeezed_block_wrapper()(fresh, **layer_kw)  # (2-D kernels: TFMOT's own)
        return S.prune_low_magnitude(fresh, **layer_kw)

    wrapped = clone_wrapped(model, wrap, custom_objects())
    return wrapped, sorted(names)


def kernel_sparsity(model, names: list[str] | None = None) -> dict:
    """Fraction of exactly-zero weights in each named layer's kernel (default: every layer with
    a kernel) and over all of them together."""
    layers = {}
    zeros = total = 0
    for layer in model.layers:
        kernel = getattr(layer, "depthwise_kernel", None) if type(layer).__name__ == "DepthwiseConv2D" else None
        kernel = kernel if kernel is not None else getattr(layer, "kernel", None)
        if kernel is None or (names is not None and layer.name not in names):
            continue
        w = np.asarray(kernel)
        layers[layer.name] = round(float(np.mean(w == 0)), 4)
        zeros += int(np.sum(w == 0))
        total += w.size
    return {"overall": round(zeros / total, 4) if total else 0.0, "layers": layers}


def xnnpack_sparse_check(model) -> str:
    """Whether TFMOT's XNNPACK latency policy accepts the graph ("ok"), else its reason. XNNPACK
    runs sparse 1x1 convolutions fast only inside an NCHW-able chain from a 3x3 stride-2 conv to a
    global average pool; video models with time folding and shifts fall outside it."""
    from tfkit._compat.keras import tfmot

    try:
        tfmot().sparsity.keras.PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    except ValueError as e:
        return str(e).splitlines()[0]
    return "ok"


def prune_magnitude(model, train, val, config: PruneConfig = PruneConfig(), *, progress: bool = True,
                    symmetries: dict | None = None) -> PruneResult:
    """Prune `model` to `config` while fine-tuning on `train` (a ClipSet), then strip the wrappers.
    Returns a new model; `model` is not modified."""
    from tfkit._compat.keras import tfmot
    from tfkit.train import TrainConfig, train_classifier

    S = tfmot().sparsity.keras
    steps = int(np.ceil(len(train.y) / config.batch_size)) * config.epochs
    wrapped, names = wrap_for_pruning(model, config, steps)
    trained = train_classifier(
        wrapped, train, val,
        TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                    augment=config.augment, seed=config.seed, weight_decay=0.0),
        progress=progress, symmetries=symmetries, callbacks=[S.UpdatePruningStep()])
    stripped = S.strip_pruning(trained.model)
    return PruneResult(stripped, trained.val_accuracy, trained.train_accuracy, kernel_sparsity(stripped, names),
                       names, xnnpack_sparse_check(model) if config.policy == "xnnpack" else "")


def gzip_bytes(data: bytes) -> int:
    """Size after gzip -9: what a sparse or clustered flatbuffer costs to download."""
    return len(gzip.compress(data, compresslevel=9))
