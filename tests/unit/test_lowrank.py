"""Low-rank factorization (tfkit.optimize.lowrank): exact at the numerical rank, the energy and
budget rules choose the ranks they promise, strides and shared layers survive, the input model is
untouched, TFLite gets two ops where there was one, bad inputs are refused by name."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfkit.bench.devices.kinds import NOT_IMPLEMENTED
from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build
from tfkit.optimize.lowrank import LowRankConfig, factorize

SPEC = VideoModelSpec(num_classes=3, frames=2, size=32, alpha=1.0, stages=2, head_channels=64,
                      frame_stack=True, dropout=0.0)


def _plain(spectrum):
    """Input (8, 8, 32) -> strided 1x1 conv "pw" (32 -> 64) -> pool -> Dense "fc1" (64 -> 64) ->
    Dense "fc2" (64 -> 64) applied twice (a shared layer) -> Dense "out" (64 -> 10). The kernels
    of pw, fc1 and fc2 are set to U diag(spectrum) V^T with random orthonormal U, V."""
    from tfkit._compat.keras import keras

    K = keras()
    inp = K.Input((8, 8, 32), name="x")
    x = K.layers.Conv2D(64, 1, strides=2, activation="relu", name="pw")(inp)
    x = K.layers.GlobalAveragePooling2D(name="pool")(x)
    x = K.layers.Dense(64, activation="relu", name="fc1")(x)
    fc2 = K.layers.Dense(64, activation="tanh", name="fc2")
    x = fc2(fc2(x))
    model = K.Model(inp, K.layers.Dense(10, name="out")(x), name="plain")
    rng = np.random.default_rng(0)
    for name in ("pw", "fc1", "fc2"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        rows, cols = kernel.shape[-2:]
        u = np.linalg.qr(rng.normal(size=(rows, rows)))[0][:, :len(spectrum)]
        v = np.linalg.qr(rng.normal(size=(cols, cols)))[0][:, :len(spectrum)]
        w = (u * np.asarray(spectrum)) @ v.T
        layer.set_weights([w.reshape(kernel.shape).astype(np.float32), rng.normal(0, 0.1, bias.shape)])
    return model


def _inputs(n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 8, 8, 32)).astype(np.float32)


def _relative_error(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def zoo():
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(0)
    return build(SPEC)


def test_full_energy_at_the_numerical_rank_is_exact_with_strides_and_a_shared_layer():
    model = _plain(np.linspace(3.0, 1.0, 8))  # exactly rank 8: energy 1.0 stops there
    result = factorize(model, LowRankConfig(energy=1.0))
    assert set(result.layers) == {"pw", "fc1", "fc2"}
    assert all(info["rank"] == 8 and info["kept_energy"] == 1.0 for info in result.layers.values()), result.layers
    assert result.skipped == {"out": "64 -> 10 channels, fewer than min_channels=16"}
    new = result.model
    assert new.get_layer("pw_lr").strides == (2, 2) and new.get_layer("pw").strides == (1, 1)
    assert new.get_layer("fc2_lr").kernel.shape == (64, 8) and new.get_layer("fc2").kernel.shape == (8, 64)
    assert new.get_layer("fc2").activation.__name__ == "tanh" and new.get_layer("fc2_lr").use_bias is False
    assert len(new.get_layer("fc2_lr").inbound_nodes) == 2  # still shared: both calls factorized
    x = _inputs()
    assert _relative_error(new(x).numpy(), model(x).numpy()) < 1e-4
    # 3 layers of 32x64 / 64x64 weights -> 8 * (in + out) each; biases unchanged.
    saved = (32 * 64 - 8 * 96) + 2 * (64 * 64 - 8 * 128)
    assert result.params_before - result.params_after == saved
    assert model.count_params() == result.params_before and new.count_params() == result.params_after


def test_energy_picks_the_smallest_rank_that_keeps_it_and_leaves_the_input_alone():
    spectrum = 0.8 ** np.arange(32)
    model = _plain(spectrum)
    config_before, weights_before = json.dumps(model.get_config()), [w.copy() for w in model.get_weights()]
    result = factorize(model, LowRankConfig(energy=0.9, round_to=1))
    kept = np.cumsum(spectrum ** 2) / np.sum(spectrum ** 2)
    expected = int(np.argmax(kept >= 0.9)) + 1  # 6
    for name, info in result.layers.items():
        assert info["rank"] == expected, (name, info)
        assert 0.9 <= info["kept_energy"] < kept[expected], info  # one less would not do
        assert info["params_after"] < info["params_before"]
    x = _inputs()
    error = _relative_error(result.model(x).numpy(), model(x).numpy())
    assert 1e-3 < error < 0.3, error  # truncated: changed, but close
    assert json.dumps(model.get_config()) == config_before
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights(), strict=True))
    assert [layer.name for layer in model.layers] == ["x", "pw", "pool", "fc1", "fc2", "out"]
    np.testing.assert_array_equal(result.model.get_layer("out").get_weights()[0], model.get_layer("out").kernel)
    # round_to rounds the rank up; a rank with no saving leaves the layer as it is.
    rounded = factorize(model, LowRankConfig(energy=0.9, round_to=8, layers=("fc1",)))
    assert rounded.layers["fc1"]["rank"] == 8 and set(rounded.layers) == {"fc1"}
    with pytest.raises(UsageError, match="costs 3072 weights, not fewer than the original 2048"):
        factorize(model, LowRankConfig(energy=1.0, layers=("pw",)))


def test_budget_bounds_every_factorized_layer_on_a_zoo_model(zoo):
    weights_before = [w.copy() for w in zoo.get_weights()]
    result = factorize(zoo, LowRankConfig(macs_budget=0.5))
    assert len(result.layers) >= 3, (result.layers, result.skipped)
    for name, info in result.layers.items():
        assert info["params_after"] / info["params_before"] <= 0.5, (name, info)
        assert info["rank"] % 8 == 0 and info["rank"] * (info["in"] + info["out"]) <= 0.5 * info["in"] * info["out"]
    assert "logits" in result.skipped and "min_channels" in result.skipped["logits"]
    assert "is not 1x1" in result.skipped["stem_conv"]
    assert "below round_to=8" in result.skipped["s0b0_project_conv"]  # 32 -> 16: the budget allows rank 5
    assert result.params_after < result.params_before
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, zoo.get_weights(), strict=True))
    for name in ("stem_conv", "stem_bn", "s0b0_dw", "logits"):  # untouched layers keep their weights
        for a, b in zip(result.model.get_layer(name).get_weights(), zoo.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(2).uniform(-1, 1, (1, *SPEC.input_shape)).astype(np.float32)
    assert result.model(x).shape == (1, 3)


@pytest.mark.parametrize("which", ["zoo", "plain"])
def test_the_factorized_model_converts_with_two_ops_where_there_was_one(zoo, which):
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras

    model = zoo if which == "zoo" else _plain(np.linspace(3.0, 1.0, 8))
    result = factorize(model, LowRankConfig(macs_budget=0.5))
    flatbuffer = convert_keras(result.model, "float32")
    assert isinstance(flatbuffer, bytes)
    before, after = TFLiteModel(convert_keras(model, "float32")).op_counts(), TFLiteModel(flatbuffer).op_counts()
    calls = {"Conv2D": 0, "Dense": 0}  # one more op per call of a factorized layer (fc2 is called twice)
    for name in result.layers:
        calls[type(model.get_layer(name)).__name__] += len(model.get_layer(name).inbound_nodes)
    assert calls["Conv2D"] >= (3 if which == "zoo" else 1) and calls["Dense"] == (0 if which == "zoo" else 3)
    assert after["CONV_2D"] == before["CONV_2D"] + calls["Conv2D"]
    assert after.get("FULLY_CONNECTED", 0) == before.get("FULLY_CONNECTED", 0) + calls["Dense"]
    shape = (1, *SPEC.input_shape) if which == "zoo" else (1, 8, 8, 32)
    x = np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32)
    np.testing.assert_allclose(TFLiteModel(flatbuffer)(x), result.model(x).numpy(), atol=1e-4)


def test_a_built_sequential_model_comes_back_functional():
    from tfkit._compat.keras import keras

    K = keras()
    model = K.Sequential([K.Input((32,)), K.layers.Dense(64, name="a"), K.layers.Dense(48, name="b")])
    result = factorize(model, LowRankConfig(macs_budget=0.5))
    assert set(result.layers) == {"a", "b"} and not isinstance(result.model, K.Sequential)
    assert [layer.name for layer in model.layers] == ["a", "b"]
    with pytest.raises(UsageError, match="no known input shape"):
        factorize(K.Sequential([K.layers.Dense(64)]), LowRankConfig())


@pytest.mark.parametrize("kw,needle", [
    ({"energy": 0.0}, "energy must be in (0, 1], got 0.0"),
    ({"energy": 1.5}, "got 1.5"),
    ({"macs_budget": 1.0}, "macs_budget must be in [0, 1) (0: off), got 1.0"),
    ({"macs_budget": -0.1}, "got -0.1"),
    ({"energy": 0.8, "macs_budget": 0.5}, "choose one of energy=0.8 and macs_budget=0.5"),
    ({"latency_budget": 0.5, "macs_budget": 0.5}, "choose one of macs_budget=0.5 and latency_budget=0.5"),
    ({"latency_budget": 1.2}, "latency_budget must be in [0, 1) (0: off), got 1.2"),
    ({"latency_budget": 0.5, "precision": "int4"}, "precision must be one of float32, int8, got 'int4'"),
    ({"layers": "logits"}, "layers must be a tuple of layer names, got 'logits'"),
    ({"min_channels": 0}, "min_channels must be >= 1, got 0"),
    ({"round_to": 0}, "round_to must be >= 1, got 0"),
    ({"latency_budget": 0.5, "device": "bogus:x"}, "LowRankConfig.device: Bad device address 'bogus:x'"),
    *[({"device": kind}, f"LowRankConfig.device: {kind}: {why.split(';')[0]}") for kind, why in NOT_IMPLEMENTED.items()],
    ({"device": "phone"}, "LowRankConfig.device: Unknown device 'phone'"),
])
def test_bad_configs_name_the_value(kw, needle, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no user devices.yaml: 'phone' names nothing
    with pytest.raises(UsageError) as e:
        LowRankConfig(**kw)
    assert needle in str(e.value)


def test_bad_models_and_layer_names_are_refused(zoo):
    from tfkit._compat.keras import keras

    with pytest.raises(UsageError, match="'logit'.*Did you mean 'logits'"):
        factorize(zoo, LowRankConfig(layers=("logit",)))
    with pytest.raises(UsageError, match=r"layer 's0b0_dw' cannot be factorized: DepthwiseConv2D"):
        factorize(zoo, LowRankConfig(layers=("s0b0_dw",)))
    with pytest.raises(UsageError, match=r"'stem_conv' cannot be factorized: kernel_size \(3, 3\)"):
        factorize(zoo, LowRankConfig(layers=("stem_conv",)))
    with pytest.raises(UsageError, match="nothing in .* to factorize.*logits: 64 -> 3 channels"):
        factorize(zoo, LowRankConfig(layers=("logits",)))

    K = keras()
    x = inp = K.Input((32,))
    x = K.layers.Dense(32, name="fc")(x)
    x = K.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    with pytest.raises(UsageError, match="Lambda layer 'double'"):
        factorize(K.Model(inp, x), LowRankConfig())

    class Sub(K.Model):
        def call(self, t):
            return t

    with pytest.raises(UsageError, match="subclassed"):
        factorize(Sub(), LowRankConfig())


def test_candidate_ranks_stay_below_break_even_and_keep_the_largest():
    from tfkit.optimize.lowrank_timing import candidate_ranks

    assert candidate_ranks(64, 64, 8, 3) == [8, 16, 24]  # 32 * 128 = 64 * 64: no saving at 32
    spread = candidate_ranks(256, 256, 8, 4)
    assert spread[0] == 8 and spread[-1] == 120 and len(spread) == 4 and spread == sorted(spread)
    assert candidate_ranks(16, 8, 8, 6) == []  # 8 * 24 > 16 * 8


def _timed_model():
    """Input (16, 16, 128) -> 1x1 conv "pw" (128 -> 128, 256 pixels) -> pool -> Dense "fc1" and
    "fc2" (128 -> 128, one config and input shape: timed once) -> Dense "out" (128 -> 10)."""
    from tfkit._compat.keras import keras

    K = keras()
    inp = K.Input((16, 16, 128), name="x")
    h = K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(128, 1, activation="relu", name="pw")(inp))
    h = K.layers.Dense(128, activation="relu", name="fc2")(K.layers.Dense(128, activation="relu", name="fc1")(h))
    return K.Model(inp, K.layers.Dense(10, name="out")(h))


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_latency_budget_picks_the_largest_rank_its_own_timings_allow(precision):
    """Each layer is cut out and converted as it is and factorized at a few ranks, each timed on
    the device (scripted here: 0.05 ms per compute op + 1e-7 ms per MAC, the same on every host),
    in the model's precision. pw (4.2 M MACs): 0.4694 ms as it is; rank r costs 0.1 + 0.0065536 r
    ms: rank 8 0.152, 32 0.310, 56 0.467, so within 0.9 x 0.4694 the largest is 32, not the
    largest candidate. fc1/fc2 (16 K MACs): 0.0516 ms as they are, every rank > 0.1 ms: kept,
    with their times in the reason. Both outcomes happen on every run."""
    from tests.scripted_timing import ScriptedDevice
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.optimize.lowrank_timing import candidate_ranks

    model = _timed_model()
    config = LowRankConfig(latency_budget=0.9, precision=precision, round_to=8, timing_rounds=2, max_candidates=3)
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 128)).astype(np.float32)
    device = ScriptedDevice()
    timing = {"sample": x[:1], "calibration": x, "bench_config": BenchConfig(threads=1, warmup=2, runs=20)}
    result = factorize(model, config, device=device, **timing)
    assert candidate_ranks(128, 128, 8, 3) == [8, 32, 56]
    assert set(result.layers) == {"pw"} and result.layers["pw"]["rank"] == 32
    t = result.layers["pw"]["latency_ms"]
    assert t["original"] == pytest.approx(0.05 + 256 * 128 * 128 * 1e-7)
    assert t["by_rank"] == pytest.approx({r: 0.1 + 256 * 256 * r * 1e-7 for r in (8, 32, 56)})
    assert t["factorized"] == t["by_rank"][32]
    for name in ("fc1", "fc2"):  # the same numbers for both: one shape, timed once
        assert result.skipped[name] == (f"no rank meets latency_budget 0.9: 0.0516 ms as it is, the fastest "
                                        f"factorized 0.1002 ms (rank 8, {precision})")
    # 2 rounds x (pw and the fc shape: as it is + 3 ranks each), every one in the model's precision
    assert len(device.calls) == 2 * 2 * 4 and {c[1] for c in device.calls} == {precision}
    assert sorted({(ops, macs) for _, _, ops, macs in device.calls}) == sorted(
        [(1, 256 * 128 * 128), (1, 128 * 128)] + [(2, 256 * 256 * r) for r in (8, 32, 56)]
        + [(2, 256 * r) for r in (8, 32, 56)])
    assert result.model.get_layer("pw_lr").output.shape[-1] == 32  # the rank chosen is the rank built


def test_latency_budget_that_no_rank_meets_leaves_nothing_and_names_every_time():
    """A device where each extra op costs more than any MACs saved: no layer is factorized, and
    the error names each one with its times (instead of returning the model unchanged)."""
    from tests.scripted_timing import ScriptedDevice

    model = _timed_model()
    config = LowRankConfig(latency_budget=0.9, round_to=8, timing_rounds=1, max_candidates=3)
    sample = np.zeros((1, 16, 16, 128), np.float32)
    with pytest.raises(UsageError) as e:
        factorize(model, config, sample=sample, device=ScriptedDevice(per_op_ms=1.0))
    why = dict(part.split(": ", 1) for part in str(e.value).split(": ", 1)[1].split("; "))
    assert str(e.value).startswith("nothing in ") and set(why) == {"pw", "fc1", "fc2", "out"}
    assert why["pw"] == "no rank meets latency_budget 0.9: 1.4194 ms as it is, the fastest factorized 2.0524 ms " \
                        "(rank 8, float32)"
    assert "fewer than min_channels" in why["out"]


def test_a_device_is_where_latency_budget_times_so_it_needs_one(monkeypatch, tmp_path):
    """`device` names where layers are timed; a named device (devices.yaml) is accepted with a
    latency budget and refused without one, where nothing would be timed on it."""
    (tmp_path / "tfkit").mkdir()
    (tmp_path / "tfkit" / "devices.yaml").write_text("devices:\n  here:\n    address: local\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert LowRankConfig(latency_budget=0.5, device="here").device == "here"
    with pytest.raises(UsageError, match="device='here' is where latency_budget times each layer; without a "
                                         "latency_budget nothing is timed"):
        LowRankConfig(device="here")


def test_latency_budget_is_checked_before_any_timing():
    model = _timed_model()
    config = LowRankConfig(latency_budget=0.9, round_to=8, timing_rounds=1, max_candidates=3)
    with pytest.raises(UsageError, match="latency_budget times each layer on the device: pass sample="):
        factorize(model, config)
    with pytest.raises(UsageError, match="'fc2' is shared .*latency budget .*needs every layer called once"):
        factorize(_plain([1.0]), config, sample=_inputs()[:1])
