"""Low-rank factorization of Dense layers and 1x1 convolutions by truncated SVD.

A layer with kernel W (in x out) becomes two: `<name>_lr` (rank r, no bias, linear) with
W1 = U_r sqrt(S_r), then a layer that keeps the original name, bias and activation, with
W2 = sqrt(S_r) V_r^T. Both are plain Conv2D/Dense layers, so every converter and delegate takes
them; the factorized layer costs r*(in+out) weights and MACs instead of in*out, a saving only
when r < in*out / (in+out), and layers where it is not are left as they are (and reported).

The rank is chosen one of three ways. By default it is the smallest rank keeping `energy` of the
kernel's squared singular values, rounded up to a multiple of `round_to`. With `macs_budget` > 0
it is instead the largest multiple of `round_to` whose factorized layer (bias counted) costs at
most that fraction of the original's parameters, which also bounds its MACs. With
`latency_budget` > 0 each layer is cut out and timed alone on `device` (this host unless it
names a board; tfkit.bench.timing), in `precision`, as it is and factorized at several ranks; the
rank is the largest whose measured latency is at most that fraction of the original's, and a
layer where none is stays as it is (reported with its times). Fewer MACs is not less time: two thin convs pay two ops' fixed cost, and on a CPU whose
int8 kernels cost per pixel below some width (tfkit.optimize.merge) the pair can be slower at any
rank. A budget replaces the energy target, so giving a budget and a non-default energy (or two
budgets) is refused.

The graph is edited in the model's config and rebuilt, and the weights copied by layer name:
the input model is never modified. Truncation changes the outputs; fine-tune afterwards (the
energy kept is a guide, not an accuracy guarantee).

Example:
    >>> result = factorize(model, LowRankConfig(macs_budget=0.5))  # doctest: +SKIP
    >>> result.params_after / result.params_before, sorted(result.skipped)
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from tfkit.errors import UnknownNameError, UsageError
from tfkit.optimize.graph import check_functional

DEFAULT_ENERGY = 0.9
SUFFIX = "_lr"
# Which config key holds a layer's output width, per factorizable layer class.
WIDTH_KEY = {"Dense": "units", "Conv2D": "filters"}


@dataclass(frozen=True)
class LowRankConfig:
    """How far to factorize. `energy`: fraction of the squared singular values each factorized
    kernel keeps, in (0, 1]. `macs_budget` in (0, 1): each factorized layer costs at most this
    fraction of the original's parameters and MACs (0: off, use `energy`). `layers`: only these
    (empty: every eligible layer). `min_channels`: skip layers with fewer input or output
    channels than this. `round_to`: ranks are multiples of it (SIMD- and delegate-friendly)."""

    energy: float = DEFAULT_ENERGY
    macs_budget: float = 0.0
    latency_budget: float = 0.0  # in (0, 1): each layer's factorized p50 over its own, timed on the device
    precision: str = "float32"  # what latency_budget times layers in: float32 or int8 (as the model ships)
    layers: tuple[str, ...] = ()
    min_channels: int = 16
    round_to: int = 8
    timing_rounds: int = 3  # latency_budget: each candidate timed this often, interleaved; the fastest kept
    max_candidates: int = 6  # latency_budget: ranks timed per distinct layer shape (evenly spread)
    device: str = "local"  # latency_budget: where layers are timed (an address or a devices.yaml name)
    seed: int = 0  # the lowrank step's fine-tune afterwards: shuffling, augmentation, dropout

    def __post_init__(self):
        if not 0.0 < self.energy <= 1.0:
            raise UsageError(f"energy must be in (0, 1], got {self.energy}")
        for name in ("macs_budget", "latency_budget"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UsageError(f"{name} must be in [0, 1) (0: off), got {getattr(self, name)}")
        chosen = [f"{n}={getattr(self, n)}" for n in ("macs_budget", "latency_budget") if getattr(self, n)]
        if self.energy != DEFAULT_ENERGY:
            chosen.insert(0, f"energy={self.energy}")
        if len(chosen) > 1:
            raise UsageError(f"choose one of {' and '.join(chosen)}: a budget sets the rank on its own")
        from tfkit.optimize.blocks import TIMED_PRECISIONS

        if self.precision not in TIMED_PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(TIMED_PRECISIONS)}, got {self.precision!r}")
        if self.timing_rounds < 1 or self.max_candidates < 1:
            raise UsageError("timing_rounds and max_candidates must be >= 1")
        from tfkit.bench.timing import LOCAL, check_device

        check_device(self.device, "LowRankConfig")
        if self.device != LOCAL and not self.latency_budget:
            raise UsageError(f"device={self.device!r} is where latency_budget times each layer; without a "
                             "latency_budget nothing is timed (set latency_budget, or leave device as 'local')")
        if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers):
            raise UsageError(f"layers must be a tuple of layer names, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.min_channels < 1:
            raise UsageError(f"min_channels must be >= 1, got {self.min_channels}")
        if self.round_to < 1:
            raise UsageError(f"round_to must be >= 1, got {self.round_to}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LowRankResult:
    model: object  # a new Functional tf_keras model (not compiled)
    # {name: {in, out, rank, kept_energy, params_before, params_after[, latency_ms]}}; latency_budget
    # adds {"original": p50, "factorized": p50 at the rank chosen, "by_rank": {rank: p50}}
    layers: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # {name: why it was left as it is}
    params_before: int = 0  # whole model
    params_after: int = 0


def _ineligible_reason(layer) -> str:
    """Why `layer` cannot be factorized here, or "" when it can."""
    from tfkit._compat.keras import keras

    K = keras()
    kind = type(layer)  # exact classes: Conv2DTranspose, for one, subclasses Conv2D
    if kind is K.layers.Dense:
        return "" if len(layer.kernel.shape) == 2 else f"Dense kernel of rank {len(layer.kernel.shape)}"
    if kind is K.layers.Conv2D:
        if tuple(layer.kernel_size) != (1, 1):
            return f"kernel_size {tuple(layer.kernel_size)} is not 1x1"
        if layer.groups != 1:
            return f"grouped convolution (groups={layer.groups})"
        if tuple(layer.dilation_rate) != (1, 1):
            return f"dilation_rate {tuple(layer.dilation_rate)}"
        return ""
    return f"{kind.__name__} is not a Dense or Conv2D layer"


def _matrix(layer) -> np.ndarray:
    w = np.asarray(layer.kernel)
    return w.reshape(w.shape[-2], w.shape[-1])


def _params(rows: int, cols: int, rank: int | None, bias: bool) -> int:
    return (rows * cols if rank is None else rank * (rows + cols)) + (cols if bias else 0)


def _choose_rank(s: np.ndarray, rows: int, cols: int, bias: bool, config: LowRankConfig) -> tuple[int, str]:
    """(rank, "") or (0, why not) for singular values `s` of a rows x cols kernel."""
    step = config.round_to
    if config.macs_budget:
        allowed = config.macs_budget * _params(rows, cols, None, bias) - (cols if bias else 0)
        most = int(allowed // (rows + cols))
        rank = most // step * step
        if rank < 1:
            return 0, (f"macs_budget {config.macs_budget} allows rank <= {most}, below round_to={step}; "
                       "lower round_to or raise the budget")
        return rank, ""
    energy = np.cumsum(s.astype(np.float64) ** 2)
    if energy[-1] == 0:
        return 0, "kernel is all zeros"
    # Singular values below float32 noise are zeros: energy=1.0 then stops at the numerical rank.
    numerical = max(1, int(np.sum(s > s[0] * max(rows, cols) * np.finfo(np.float32).eps)))
    needed = int(np.searchsorted(energy / energy[-1], config.energy)) + 1
    rank = min(-(-min(needed, numerical) // step) * step, rows, cols)
    if rank * (rows + cols) >= rows * cols:
        return 0, (f"rank {rank} for energy {config.energy} costs {rank * (rows + cols)} weights, not fewer than "
                   f"the original {rows * cols}")
    return rank, ""


def _unique_name(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _as_functional(model):
    """A Functional view of a built Sequential model (same layer objects; nothing is called)."""
    from tfkit._compat.keras import keras

    K = keras()
    if not isinstance(model, K.Sequential):
        return model
    if not model.built or not getattr(model, "inputs", None):
        raise UsageError(f"Sequential model {model.name!r} has no known input shape; build it (give the first "
                         "layer an input_shape, or call model.build(shape)) before factorizing")
    return K.Model(model.inputs, model.outputs, name=model.name)


def _split_configs(layer_config: dict, first_name: str, rank: int) -> tuple[dict, dict]:
    """(first factor's layer config, the original's edited in place of it) from the original's."""
    first, second = copy.deepcopy(layer_config), copy.deepcopy(layer_config)
    for part in (first, second):
        part.pop("build_config", None)  # its input shape is no longer the second layer's
    key = WIDTH_KEY[layer_config["class_name"]]
    inner = first["config"]
    inner.update({"name": first_name, key: rank, "use_bias": False, "activation": "linear",
                  "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
                  "bias_regularizer": None})
    first["name"] = first_name
    if "strides" in second["config"]:  # the stride runs on the first factor; the second is a plain 1x1
        second["config"]["strides"] = [1, 1]
    # One node per call of the original (a shared layer is called more than once), each fed by
    # the matching call of the first factor.
    second["inbound_nodes"] = [[[first_name, i, 0, {}]] for i in range(len(layer_config["inbound_nodes"]))]
    return first, second


def _plan(u, s, vt, rank: int, rows: int, cols: int, bias: bool) -> tuple:
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root, root[:, None] * vt[:rank], {
        "in": rows, "out": cols, "rank": rank,
        "kept_energy": round(float(np.sum(s[:rank] ** 2) / np.sum(s ** 2)), 6),
        "params_before": _params(rows, cols, None, bias), "params_after": _params(rows, cols, rank, bias)})


def factorize(model, config: LowRankConfig = LowRankConfig(), *, sample: np.ndarray | None = None,
              calibration: np.ndarray | None = None, device=None, bench_config=None) -> LowRankResult:
    """Factorize the eligible Dense and 1x1 Conv2D layers of `model` (Functional, or a built
    Sequential, returned as Functional) by truncated SVD. Returns a new model; `model` is not
    modified. With `config.latency_budget`: `sample` is one model input (batch axis included),
    `calibration` model inputs whose activations calibrate int8 timing models, `device` where
    layers are timed (a Device; default: the one `config.device` names)."""
    graph = _as_functional(model)
    check_functional(graph, "low-rank factorization")
    names = [layer.name for layer in graph.layers]
    for name in config.layers:
        if name not in names:
            raise UnknownNameError("layer to factorize", name, names)
        why = _ineligible_reason(graph.get_layer(name))
        if why:
            raise UsageError(f"layer {name!r} cannot be factorized: {why}; low-rank factorization takes Dense "
                             "layers and 1x1 Conv2D layers (groups=1, no dilation)")
    if config.latency_budget and sample is None:
        raise UsageError("latency_budget times each layer on the device: pass sample= (one model input)")
    if config.latency_budget:  # a device that cannot be opened fails before any SVD or timing model
        from tfkit.bench.timing import timing_device

        device = timing_device(device if device is not None else config.device)
    wanted = set(config.layers) if config.layers else set(names)

    plans, skipped, timed = {}, {}, {}
    for layer in graph.layers:
        if layer.name not in wanted or getattr(layer, "kernel", None) is None:
            continue
        why = _ineligible_reason(layer)
        if why:
            skipped[layer.name] = why
            continue
        w = _matrix(layer)
        rows, cols = w.shape
        if min(rows, cols) < config.min_channels:
            skipped[layer.name] = f"{rows} -> {cols} channels, fewer than min_channels={config.min_channels}"
            continue
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
        if config.latency_budget:
            timed[layer.name] = (u, s, vt, rows, cols, layer.use_bias)
            continue
        rank, why = _choose_rank(s, rows, cols, layer.use_bias, config)
        if not rank:
            skipped[layer.name] = why
            continue
        plans[layer.name] = _plan(u, s, vt, rank, rows, cols, layer.use_bias)
    if timed:
        from tfkit.optimize.lowrank_timing import ranks_by_latency

        chosen, timings, reasons = ranks_by_latency(graph, timed, config, sample=sample, calibration=calibration,
                                                    device=device, bench_config=bench_config)
        skipped.update(reasons)
        for name, rank in chosen.items():
            plans[name] = _plan(*timed[name][:3], rank, *timed[name][3:])
            plans[name][2]["latency_ms"] = timings[name]
    if not plans:
        raise UsageError(f"nothing in {model.name!r} to factorize with {config}: "
                         + ("; ".join(f"{n}: {r}" for n, r in skipped.items()) or "no Dense or 1x1 Conv2D layer"))
    rebuilt = rebuild_factorized(graph, plans)
    return LowRankResult(rebuilt, {name: plan[2] for name, plan in plans.items()}, skipped,
                         model.count_params(), rebuilt.count_params())


def rebuild_factorized(graph, plans: dict):
    """A new model from Functional `graph` with each planned layer split in two: plans[name] =
    (first factor kernel, second factor kernel, {"rank": r, ...})."""
    from tfkit._compat.keras import keras
    from tfkit.models.layers import custom_objects

    K = keras()
    names = [layer.name for layer in graph.layers]
    graph_config = graph.get_config()
    taken = set(names)
    first_names, layer_configs = {}, []
    for layer_config in graph_config["layers"]:
        name = layer_config["name"]
        if name not in plans:
            layer_configs.append(layer_config)
            continue
        first_names[name] = _unique_name(name + SUFFIX, taken)
        taken.add(first_names[name])
        layer_configs.extend(_split_configs(layer_config, first_names[name], plans[name][2]["rank"]))
    graph_config["layers"] = layer_configs
    with K.utils.custom_object_scope(custom_objects()):
        rebuilt = K.Model.from_config(graph_config)

    for layer in rebuilt.layers:
        if layer.name in plans:
            w1, w2, _ = plans[layer.name]
            layer.set_weights([w2.reshape(layer.kernel.shape).astype(layer.kernel.dtype.as_numpy_dtype),
                               *graph.get_layer(layer.name).get_weights()[1:]])
            first = rebuilt.get_layer(first_names[layer.name])
            first.set_weights([w1.reshape(first.kernel.shape).astype(first.kernel.dtype.as_numpy_dtype)])
        elif layer.weights and layer.name not in first_names.values():
            layer.set_weights(graph.get_layer(layer.name).get_weights())
    return rebuilt
