"""Linear 1x1 pair merging (tfkit.optimize.merge): which pairs are found and which are refused, the
merged model computes the same function with fewer layers, block removal is what exposes the pairs
in a zoo model, and the timed choice follows its own measurements."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build

SPEC = VideoModelSpec(num_classes=3, frames=2, size=32, alpha=0.5, stages=3, head_channels=32, dropout=0.0)


def _randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so a wrong fold shows in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


def _toy(build_body):
    from tfkit._compat.keras import keras

    K = keras()
    x = K.Input((6, 6, 5))
    return _randomize_bn(K.Model(x, build_body(K, x)))


def _x(model, n=2, seed=1):
    shape = [int(d) for d in model.inputs[0].shape[1:]]
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def test_linear_pair_with_batchnorm_merges_exactly_and_leaves_the_input_alone():
    from tfkit.optimize.merge import find_linear_pairs, merge_linear

    model = _toy(lambda K, x: K.layers.Conv2D(7, 1, activation="relu", name="b")(
        K.layers.BatchNormalization(name="bn")(K.layers.Conv2D(3, 1, use_bias=False, name="a")(x))))
    before = [w.copy() for w in model.get_weights()]
    pairs = find_linear_pairs(model)
    assert [(p.first, p.second, p.batchnorm) for p in pairs] == [("a", "b", "bn")]
    assert (pairs[0].macs_pair, pairs[0].macs_merged) == (5 * 3 + 3 * 7, 5 * 7)
    merged = merge_linear(model)
    names = [layer.name for layer in merged.model.layers]
    assert "a" not in names and "bn" not in names and "b" in names
    x = _x(model)
    np.testing.assert_allclose(merged.model(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    for w, w0 in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, w0)


def test_dense_pairs_merge_and_nonlinear_or_shared_or_spatial_ones_do_not():
    from tfkit.optimize.merge import find_linear_pairs, merge_linear

    dense = _toy(lambda K, x: K.layers.Dense(4, name="d2")(K.layers.Dense(2, name="d1")(K.layers.Flatten()(x))))
    assert [(p.first, p.second) for p in find_linear_pairs(dense)] == [("d1", "d2")]
    x = _x(dense)
    np.testing.assert_allclose(merge_linear(dense).model(x).numpy(), dense(x).numpy(), rtol=1e-5, atol=1e-5)

    refused = {
        "activation between": lambda K, x: K.layers.Conv2D(4, 1)(K.layers.Conv2D(3, 1, activation="relu")(x)),
        "3x3 reader": lambda K, x: K.layers.Conv2D(4, 3)(K.layers.Conv2D(3, 1)(x)),
        "strided first": lambda K, x: K.layers.Conv2D(4, 1)(K.layers.Conv2D(3, 1, strides=2)(x)),
        "two readers": lambda K, x: K.layers.Add()([K.layers.Conv2D(3, 1)(h := K.layers.Conv2D(3, 1)(x)), h]),
        "model output between": None,
    }
    for why, body in refused.items():
        if body is None:
            from tfkit._compat.keras import keras

            K = keras()
            inp = K.Input((6, 6, 5))
            mid = K.layers.Conv2D(3, 1)(inp)
            model = K.Model(inp, [mid, K.layers.Conv2D(4, 1)(mid)])
        else:
            model = _toy(body)
        assert find_linear_pairs(model) == [], why


def test_block_removal_exposes_pairs_and_merging_keeps_the_zoo_model_exact():
    from tfkit.optimize.blocks import find_blocks, remove_blocks
    from tfkit.optimize.merge import find_linear_pairs, merge_linear

    model = _randomize_bn(build(SPEC))
    # a projection that also feeds a residual Add has two readers; only a single-block stage's does not
    before = {p.second for p in find_linear_pairs(model)}
    stripped = remove_blocks(model, [b.name for b in find_blocks(model)])
    pairs = find_linear_pairs(stripped)
    assert before < {p.second for p in pairs}
    assert all(p.first.endswith("project_conv") and p.batchnorm.endswith("project_bn") for p in pairs)
    merged = merge_linear(stripped)
    assert len(merged.model.layers) == len(stripped.layers) - 2 * len(pairs)
    x = _x(stripped)
    np.testing.assert_allclose(merged.model(x).numpy(), stripped(x).numpy(), rtol=1e-4, atol=1e-5)


def test_auto_times_only_pairs_that_add_macs_and_follows_its_timings():
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.optimize.merge import choose_merges, find_linear_pairs

    # a widening pair (merging saves MACs) and a bottleneck pair (merging adds MACs)
    model = _toy(lambda K, x: K.layers.Conv2D(24, 1, name="up")(K.layers.Conv2D(2, 1, name="down")(
        K.layers.ReLU()(K.layers.Conv2D(24, 1, name="wide")(K.layers.Conv2D(8, 1, name="narrow")(x))))))
    pairs = {p.second: p for p in find_linear_pairs(model)}
    assert pairs["wide"].macs_merged < pairs["wide"].macs_pair and pairs["up"].macs_merged > pairs["up"].macs_pair
    x = _x(model, n=4)
    config = BenchConfig(threads=1, warmup=2, runs=20)
    for precision in ("float32", "int8"):
        result = choose_merges(model, "auto", sample=x[:1], calibration=x, precision=precision, bench_config=config,
                               rounds=1)
        assert set(result.timings_ms) == {"up"}
        t = result.timings_ms["up"]
        assert t["pair"] > 0 and t["merged"] > 0
        assert {p.second for p in result.pairs} == {"wide"} | ({"up"} if t["merged"] < t["pair"] else set())
    assert {p.second for p in choose_merges(model, "all").pairs} == {"wide", "up"}
    off = choose_merges(model, "off")
    assert off.pairs == () and off.model is model


def test_bad_requests_are_refused_by_name():
    from tfkit.optimize.merge import choose_merges, find_linear_pairs, merge_linear
    from tfkit.optimize.structured import StructuredConfig

    model = _toy(lambda K, x: K.layers.Conv2D(4, 1, name="b")(K.layers.Conv2D(2, 1, name="a")(x)))
    other = _toy(lambda K, x: K.layers.Conv2D(4, 1, name="q")(K.layers.Conv2D(2, 1, name="p")(x)))
    with pytest.raises(UsageError, match=r"'p' -> 'q' is not a mergeable linear pair.*a -> b"):
        merge_linear(model, find_linear_pairs(other))
    with pytest.raises(UsageError, match="merge policy must be one of auto, all, off"):
        choose_merges(model, "sometimes")
    with pytest.raises(UsageError, match="needs `sample`"):
        choose_merges(model, "auto")
    with pytest.raises(UsageError, match="merge_linear must be one of"):
        StructuredConfig(merge_linear="yes")
