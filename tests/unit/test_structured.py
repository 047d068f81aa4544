"""Structured pruning (tfkit.optimize.channels / blocks / distill / cost): channel groups follow
residual adds, depthwise convs and squeeze-excite; removing channels or blocks whose outputs are
exactly zero leaves the model's outputs unchanged (so the surgery copies every kept weight to the
right place); user models from keras.applications prune; bad input is refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build

SPEC = VideoModelSpec(num_classes=3, frames=2, size=32, alpha=0.5, stages=3, head_channels=32, dropout=0.0)
V3 = VideoModelSpec(family="mobilenet_v3", num_classes=3, frames=2, size=32, alpha=0.5, stages=5, head_channels=32,
                    dropout=0.0, temporal="2plus1d")


def _x(model, seed=0):
    shape = [1 if d is None else int(d) for d in model.inputs[0].shape]
    return np.random.default_rng(seed).normal(size=(2, *shape[1:])).astype(np.float32)


def _zero_half(model, cg, rng):
    """Zero gamma and beta of half the channels of every BatchNorm in each group that has BNs:
    those channels are exactly 0 downstream. Returns the keep map of the other half."""
    keep = {}
    for g in cg.prunable():
        bns = [n for n in cg.groups[g].channelwise if type(model.get_layer(n)).__name__ == "BatchNormalization"]
        if not bns:
            continue
        size = cg.groups[g].size
        kept = np.sort(rng.permutation(size)[:max(1, size // 2)])
        dead = np.setdiff1d(np.arange(size), kept)
        for name in bns:
            w = model.get_layer(name).get_weights()
            w[0][dead] = 0.0
            w[1][dead] = 0.0
            model.get_layer(name).set_weights(w)
        keep[g] = kept
    return keep


@pytest.mark.parametrize("spec", [SPEC, V3], ids=["tsm_mobilenet_v2", "2plus1d_mobilenet_v3_se"])
def test_removing_dead_channels_is_exact_on_zoo_models(spec):
    from tfkit.optimize.channels import ChannelGraph, apply_channels

    model = build(spec)
    cg = ChannelGraph(model)
    keep = _zero_half(model, cg, np.random.default_rng(0))
    assert len(keep) >= 4
    x = _x(model)
    before = np.asarray(model(x))
    pruned = apply_channels(cg, keep)
    assert pruned.count_params() < 0.75 * model.count_params()
    np.testing.assert_allclose(np.asarray(pruned(x)), before, atol=1e-4)


def test_groups_follow_residual_adds_and_outputs_stay_fixed():
    from tfkit.optimize.channels import ChannelGraph

    cg = ChannelGraph(build(SPEC))
    by_producer = {p: g for g in cg.roots() for p in cg.groups[g].producers}
    # a stage's blocks add into one residual stream: their project convs share one group
    assert by_producer["s2b0_project_conv"] == by_producer["s2b1_project_conv"] == by_producer["s2b2_project_conv"]
    assert by_producer["s2b1_expand_conv"] != by_producer["s2b2_expand_conv"]
    assert "s2b1_dw" in cg.groups[by_producer["s2b1_expand_conv"]].channelwise
    assert cg.groups[by_producer["logits"]].fixed == ["a model output"]
    assert by_producer["logits"] not in cg.prunable()


def test_input_model_is_untouched_and_criteria_differ():
    from tfkit.optimize.channels import ChannelConfig, prune_channels

    model = build(SPEC)
    before = [w.copy() for w in model.get_weights()]
    kept = {}
    for criterion in ("l1", "l2", "activation"):
        r = prune_channels(model, ChannelConfig(ratio=0.5, criterion=criterion, scope="uniform"), data=_x(model))
        assert r.params_after < r.params_before
        assert all(g["kept"] <= g["total"] for g in r.groups.values())
        kept[criterion] = r
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    r = prune_channels(model, ChannelConfig(ratio=0.5, layer_ratios={"s2b1_expand_conv": 0.75}, scope="uniform"))
    total = r.groups["s2b1_expand_conv"]["total"]
    assert r.groups["s2b1_expand_conv"]["kept"] == total // 4 and r.groups["s2b2_expand_conv"]["kept"] == total // 2


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50", "EfficientNetB0"])
def test_keras_applications_prune_exactly(name):
    from tfkit._compat.keras import keras
    from tfkit.optimize.channels import ChannelConfig, ChannelGraph, apply_channels, prune_channels

    model = getattr(keras().applications, name)(weights=None, input_shape=(32, 32, 3), classes=4)
    r = prune_channels(model, ChannelConfig(ratio=0.4, criterion="l2"))
    assert r.params_after < 0.8 * r.params_before
    assert r.model(_x(model)).shape == (2, 4)
    cg = ChannelGraph(model)
    keep = _zero_half(model, cg, np.random.default_rng(1))
    x = _x(model)
    np.testing.assert_allclose(np.asarray(apply_channels(cg, keep)(x)), np.asarray(model(x)), atol=1e-4)


def test_removing_zeroed_blocks_is_exact_including_chained_ones():
    from tfkit.optimize.blocks import find_blocks, remove_blocks

    model = build(SPEC)
    blocks = find_blocks(model)
    assert [b.name for b in blocks] == ["s1b1_add", "s2b1_add", "s2b2_add"]
    assert blocks[2].shortcut == ("s2b1_add", 0) and "s2b2_shift" in blocks[2].layers
    x = _x(model)
    for name in ("s2b1_project_bn", "s2b2_project_bn"):
        w = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([np.zeros_like(w[0]), np.zeros_like(w[1]), *w[2:]])
    smaller = remove_blocks(model, ["s2b1_add", "s2b2_add"])
    assert len(smaller.layers) == len(model.layers) - 2 * (len(blocks[1].layers) + 1)
    full = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(smaller(x)), full, rtol=1e-4, atol=1e-4 * np.abs(full).max())
    live = np.asarray(remove_blocks(model, ["s1b1_add"])(x))  # a block that does contribute
    assert np.abs(live - full).max() > 1e-3 * np.abs(full).max()
    with pytest.raises(UsageError, match="s9b9_add"):
        remove_blocks(model, ["s9b9_add"])


def test_block_latency_split_times_each_block_at_each_width():
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.optimize.blocks import block_latency_split, find_blocks, fit_split

    split = fit_split("b", (1.0, 0.5), (3.0, 2.0))
    assert split.fixed_ms == pytest.approx(1.0) and split.width_ms == pytest.approx(2.0)
    assert split.fixed_fraction == pytest.approx(1 / 3)
    model = build(SPEC)
    blocks = find_blocks(model)  # s2b1 and s2b2 have the same shape: timed once, the same split
    splits = block_latency_split(model, blocks, _x(model)[:1], widths=(1.0, 0.5), rounds=2,
                                 bench_config=BenchConfig(threads=1, warmup=2, runs=5))
    assert [s.block for s in splits] == [b.name for b in blocks] and len(splits[0].latency_ms) == 2
    assert splits[1].latency_ms == splits[2].latency_ms
    assert splits[0].fixed_ms >= 0 and splits[0].full_ms > 0


class _WatchedDevice:
    """This host, recording the tensor types of every flatbuffer it runs."""

    def __init__(self):
        from tfkit.bench.devices.local import LocalDevice

        self.device, self.kernel_types = LocalDevice(), []

    def run(self, path, **kw):
        from tfkit.convert.parity import TFLiteModel

        tflite = TFLiteModel(path.read_bytes())
        convs = [op["inputs"][1] for op in tflite._graph_ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
        details = {d["index"]: d["dtype"] for d in tflite.interpreter.get_tensor_details()}
        self.kernel_types.append({np.dtype(details[i]).name for i in convs})
        return self.device.run(path, **kw)


def test_blocks_are_timed_as_int8_flatbuffers_when_the_model_ships_in_int8():
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.optimize.blocks import block_latency_split, find_blocks

    model = build(SPEC)
    blocks = find_blocks(model)[:1]
    watched = _WatchedDevice()
    splits = block_latency_split(model, blocks, _x(model)[:1], widths=(1.0, 0.5), rounds=1, precision="int8",
                                 calibration=_x(model, 1), device=watched,
                                 bench_config=BenchConfig(threads=1, warmup=2, runs=5))
    assert len(splits) == 1 and splits[0].full_ms > 0
    with_convs = [t for t in watched.kernel_types if t]  # the empty model (a ReLU) has none
    assert len(with_convs) == 2 and all(t == {"int8"} for t in with_convs), watched.kernel_types
    with pytest.raises(UsageError, match="float32 or int8, got precision 'fp16'"):
        block_latency_split(model, blocks, _x(model)[:1], precision="fp16")


def test_precision_notes_say_when_int8_does_not_pay():
    from tfkit.optimize.structured import StructuredConfig, precision_notes

    pays = {"float32": {"before": 1.0, "after": 0.3}, "int8": {"before": 0.8, "after": 0.24}}
    assert precision_notes(pays) == []
    loses = {"float32": {"before": 1.0, "after": 0.26}, "int8": {"before": 0.9, "after": 0.31}}
    notes = precision_notes(loses)
    assert len(notes) == 2 and "0.310 vs 0.260 ms" in notes[0] and "74%" in notes[1] and "66%" in notes[1]
    assert "prune fewer channels" in notes[0]
    never = {"float32": {"before": 2.93, "after": 0.41}, "int8": {"before": 3.95, "after": 0.58}}
    notes = precision_notes(never)  # int8 slower before pruning too: pruning less would not help
    assert len(notes) == 1 and "before pruning (3.950 vs 2.930 ms)" in notes[0] and "fewer" not in notes[0]
    with pytest.raises(UsageError, match="precision must be one of float32, int8, got 'fp16'"):
        StructuredConfig(precision="fp16")


def test_a_bad_device_is_refused_before_any_work(monkeypatch, tmp_path):
    """A device address that cannot be used fails as the config is built, and a device handed to
    structured_prune is opened before the model is touched (no model here: any work would crash)."""
    from tfkit.bench.devices.kinds import NOT_IMPLEMENTED
    from tfkit.optimize.structured import StructuredConfig, structured_prune

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no user devices.yaml
    unsupported = [(kind, why.split(";")[0]) for kind, why in NOT_IMPLEMENTED.items()]  # adb, until it lands
    for bad, needle in (("bogus:x", "Bad device address 'bogus:x'"), ("nope", "Unknown device 'nope'"),
                        (3, "must be a device address"), *unsupported):
        with pytest.raises(UsageError) as e:
            StructuredConfig(device=bad)
        assert "StructuredConfig.device" in str(e.value) and needle in str(e.value)
    with pytest.raises(UsageError, match="Unknown device 'nope'"):
        structured_prune(None, None, None, StructuredConfig(), device="nope")


def test_bad_input_is_refused_by_name():
    from tfkit._compat.keras import keras
    from tfkit.optimize.channels import ChannelConfig, prune_channels
    from tfkit.optimize.structured import StructuredConfig

    K = keras()
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(UsageError, match="ratio"):
            ChannelConfig(ratio=bad)
    with pytest.raises(UsageError, match="criterion|importance"):
        ChannelConfig(criterion="entropy")
    with pytest.raises(UsageError, match="nothing to prune"):
        StructuredConfig(ratio=0.0, blocks=False)
    from tfkit.optimize.structured import structured_prune

    with pytest.raises(UsageError, match="model_ms must be a measured latency"):
        structured_prune(None, None, None, StructuredConfig(), model_ms=-1.0)
    x = K.Input((8, 8, 3))
    y = K.layers.Conv2D(8, 3)(x)
    lam = K.Model(x, K.layers.Dense(2)(K.layers.Lambda(lambda t: t * 2, name="double")(y)))
    with pytest.raises(UsageError, match="double"):
        prune_channels(lam)

    class Odd(K.layers.Layer):
        def call(self, t):
            return t[..., ::-1]

    odd = K.Model(x, K.layers.Dense(2)(Odd(name="odd_flip")(y)))
    with pytest.raises(UsageError, match="odd_flip.*register_channel_rule"):
        prune_channels(odd)

    class Sub(K.Model):
        def call(self, t):
            return t

    with pytest.raises(UsageError, match="subclassed"):
        prune_channels(Sub())


def test_count_macs_counts_convolutions_exactly():
    from tfkit._compat.keras import keras
    from tfkit.optimize.cost import count_macs

    K = keras()
    x = K.Input((16, 16, 3))
    y = K.layers.Conv2D(8, 3, padding="same")(x)  # 16*16*8 * 3*3*3
    y = K.layers.DepthwiseConv2D(3, strides=2, padding="same")(y)  # 8*8*8 * 9
    y = K.layers.Dense(5)(K.layers.GlobalAveragePooling2D()(y))  # 8 * 5
    assert count_macs(K.Model(x, y)) == 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 8 * 5


def test_distillation_pulls_the_student_toward_the_teacher():
    from tfkit.data.folder import ClipSet
    from tfkit.optimize.distill import DistillConfig, distill

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, *SPEC.input_shape), dtype=np.uint8)
    clips = ClipSet(x, rng.integers(0, 3, 24).astype(np.int64), tuple(f"c{i}" for i in range(24)), ("a", "b", "c"))
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(0)
    teacher, student = build(SPEC), build(SPEC)
    xf = x.astype(np.float32) / 127.5 - 1.0
    # a fresh model's logits are ~1e-4; give the teacher a head with logits of order 1
    feats = np.asarray(keras().Model(teacher.inputs, teacher.get_layer("temporal_pool").output)(xf))
    head = teacher.get_layer("logits")
    kernel = rng.normal(size=head.get_weights()[0].shape) / (feats.std() * np.sqrt(feats.shape[-1]))
    head.set_weights([kernel.astype(np.float32), np.zeros(3, np.float32)])

    def gap():  # in training mode: a few dozen steps do not settle BatchNorm's moving statistics
        t, s = np.asarray(teacher(xf)), np.asarray(student(xf, training=True))
        return float(np.mean(np.abs(t - s))), float(np.mean(t.argmax(1) == s.argmax(1)))

    before, agree_before = gap()
    result = distill(student, teacher, clips, clips,
                     DistillConfig(alpha=1.0, temperature=1.0, epochs=15, learning_rate=3e-3, batch_size=8,
                                   augment=False), progress=False)
    assert result.model is student and 0.0 <= result.val_accuracy <= 1.0
    after, agree_after = gap()
    assert after < 0.75 * before and agree_after >= max(agree_before, 0.8), (before, after, agree_before, agree_after)
    # feature pairs of different widths learn a projection alongside
    distill(build(SPEC), teacher, clips, clips, DistillConfig(epochs=1, batch_size=8, augment=False,
                                                              features=(("s2b2_add", "s2b1_expand_act"),)),
            progress=False)
    with pytest.raises(UsageError, match="alpha"):
        DistillConfig(alpha=1.5)
    with pytest.raises(UsageError, match="no layer 'nope'"):
        distill(student, teacher, clips, clips, DistillConfig(features=(("nope", "logits"),)), progress=False)


def test_cached_teacher_logits_match_the_teacher_on_each_augmented_clip():
    """distill looks the teacher's logits up by (clip, augmentation variant): every key a keyed
    batch carries must name the clip and variant the batch really holds."""
    from tfkit.data import MOTION_CLASSES, MOTION_SYMMETRIES
    from tfkit.data.folder import ClipSet
    from tfkit.optimize.distill import teacher_table, variants
    from tfkit.train import TrainConfig, clip_batches

    rng = np.random.default_rng(1)
    classes = tuple(MOTION_CLASSES)
    n = 12
    clips = ClipSet(rng.integers(0, 256, (n, *SPEC.input_shape), dtype=np.uint8),
                    rng.integers(0, len(classes), n).astype(np.int64), tuple(f"c{i}" for i in range(n)), classes)
    spec = VideoModelSpec(num_classes=len(classes), frames=2, size=32, alpha=0.35, stages=2, dropout=0.0)
    teacher = build(spec)
    config = TrainConfig(batch_size=5)
    assert variants(config, MOTION_SYMMETRIES) == 16 and variants(TrainConfig(augment=False), MOTION_SYMMETRIES) == 1
    table = np.asarray(teacher_table(teacher, clips, config, MOTION_SYMMETRIES))
    assert table.shape == (n * 16, len(classes))
    seen = set()
    for x, y, key in clip_batches(clips, config, MOTION_SYMMETRIES, keyed=True).take(3):
        key, out = np.asarray(key), np.asarray(teacher(x, training=False))
        err = np.abs(table[key] - out).max()
        assert err <= 1e-3 * np.abs(out).max(), err  # a fresh model's logits are small: relative
        assert np.abs(table[(key + 1) % len(table)] - out).max() > 20 * err  # a wrong key would show
        seen.update((key % 16).tolist())
    assert len(seen) > 3  # several variants were drawn, not only the identity

    # the table is kept by content: the same teacher and clips reuse it, a changed teacher does not
    from tfkit.optimize import distill as distill_module

    kept = len(distill_module._TABLES)
    np.testing.assert_array_equal(np.asarray(teacher_table(teacher, clips, config, MOTION_SYMMETRIES)), table)
    assert len(distill_module._TABLES) == kept
    head = next(layer for layer in reversed(teacher.layers) if layer.get_weights())
    head.set_weights([w * 3.0 for w in head.get_weights()])
    changed = np.asarray(teacher_table(teacher, clips, config, MOTION_SYMMETRIES))
    x0 = clips.x[:1].astype(np.float32) * (2 / 255) - 1  # variant 0 of clip 0: the clip itself
    np.testing.assert_allclose(changed[0], np.asarray(teacher(x0, training=False))[0], rtol=1e-3, atol=1e-5)
    assert np.abs(changed[0] - table[0]).max() > 1e-4


def test_exit_split_recomposes_the_model_and_refuses_cuts_across_a_skip():
    from tfkit.optimize.exits import choose_threshold, split_for_exit

    model = build(SPEC)
    x = _x(model)[:1]
    parts = split_for_exit(model, "s2b1_add", x)
    logits, features = parts.head(x)
    assert logits.shape == (1, 3) and tuple(features.shape) == (2, 4, 4, 16)
    np.testing.assert_allclose(np.asarray(parts.tail(features)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    assert "exit_logits" not in [layer.name for layer in model.layers]  # the input model is unchanged
    with pytest.raises(UsageError, match="s2b2_add.*s2b1_add"):
        split_for_exit(model, "s2b2_expand_conv", x)

    def head_fn(c):
        out = parts.head(c)
        return np.asarray(out[0]), out[1]

    y = np.array([0])
    threshold, table = choose_threshold(head_fn, lambda f: np.asarray(parts.tail(f)), x, y, max_drop=1.0)
    assert table[1.0][1] == 0.0  # nothing is certain enough to exit at 1.0
    assert threshold in table


def test_exit_threshold_exits_most_within_the_drop_and_is_conservative_on_ties():
    """Clips carry their exit confidence; the exit is right on confident clips, the tail always."""
    from tfkit.optimize.exits import choose_threshold

    def head_fn(clip):  # logits whose softmax max is the clip's confidence c (3 classes)
        c, label, exit_right = clip.reshape(-1)
        a = np.log(2 * c / (1 - c))
        logits = np.zeros(3)
        logits[int(label) if exit_right else (int(label) + 1) % 3] = a
        return logits, label

    def tail_fn(label):
        return np.eye(3)[int(label)]

    def clips(rows):
        return np.array(rows, np.float32)[:, None, :], np.array([int(r[1]) for r in rows])

    # the clip at 0.55 would exit wrong: 0.6 and 0.7 exit the two right ones, 0.7 is the safer
    x, y = clips([(0.95, 0, 1), (0.75, 1, 1), (0.55, 2, 0), (0.4, 0, 0)])
    threshold, table = choose_threshold(head_fn, tail_fn, x, y, max_drop=0.01)
    assert table[0.5] == (0.75, 0.75) and table[0.6] == table[0.7] == (1.0, 0.5) and table[0.8] == (1.0, 0.25)
    assert threshold == 0.7
    # an exit confident on no clip: every threshold ties at 0 exits, so the most conservative one
    x, y = clips([(0.45, 0, 0), (0.4, 1, 1)])
    assert choose_threshold(head_fn, tail_fn, x, y)[0] == 1.0
