"""Per-layer int8 weight granularity (tfkit.convert.granularity) and `--repair auto` choosing it,
on a tiny real model whose one layer needs per-channel scales: the real TFLite calibrator,
quantizer and interpreter. Nothing under test is faked."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.errors import ConversionError


@pytest.fixture(scope="module")
def disparate():
    """conv "good" (channels of similar weight ranges) -> 1x1 conv "bad" whose first 4 output
    channels have 100x smaller weights, divided back in the logits: the float function is a
    plain classifier, but one per-tensor kernel scale for "bad" rounds those channels to ~zero."""
    from tfkit._compat.keras import keras
    from tfkit.convert.repair import calibrate

    K = keras()
    K.utils.set_random_seed(2)
    x = np.random.default_rng(2).normal(size=(200, 6, 6, 3)).astype("float32")
    inp = K.Input((6, 6, 3), name="clip")
    h = K.layers.Conv2D(16, 3, padding="same", activation="relu", name="good")(inp)
    h = K.layers.Conv2D(16, 1, activation="relu", name="bad")(h)
    model = K.Model(inp, K.layers.Dense(5, name="logits")(K.layers.GlobalAveragePooling2D()(h)))
    k, b = model.get_layer("bad").get_weights()
    k[..., :4] *= 0.01
    b[:4] *= 0.01
    model.get_layer("bad").set_weights([k, b])
    k2, b2 = model.get_layer("logits").get_weights()
    k2[:4] *= 100
    model.get_layer("logits").set_weights([k2, b2])
    y = np.argmax(model.predict(x, verbose=0), -1)  # labels the float model gets right
    calibrated, samples = calibrate(model, [c[None] for c in x[:100]])
    return model, x, y, calibrated, samples


def _kernel_scales(flatbuffer: bytes) -> dict[str, int]:
    """{layer name: number of kernel scales} read back through the interpreter."""
    from tfkit.convert.parity import TFLiteModel

    found = {}
    for t in TFLiteModel(flatbuffer).interpreter.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        if t["dtype"] == np.int8 and len(t["shape"]) == 4:
            for layer in ("good", "bad"):
                if f"/{layer}/" in t["name"] and "Relu" not in t["name"]:
                    found[layer] = len(scales)
    return found


def test_per_tensor_error_ranks_the_disparate_layer_last_and_mix_swaps_only_the_named_layers(disparate):
    from tfkit.convert.granularity import mix, per_tensor_error
    from tfkit.convert.repair import _outputs, quantize

    _, _, _, calibrated, samples = disparate
    pc, pt = quantize(calibrated, granularity="per_channel"), quantize(calibrated, granularity="per_tensor")
    errors = per_tensor_error(pc, pt)
    names = list(errors)
    assert "/bad/" in names[-1] and errors[names[-1]] > 5 * errors[next(n for n in names if "/good/" in n)]
    good = [n for n in names if "/good/" in n]
    mixed = mix(pc, pt, good)
    assert len(pt) < len(mixed) < len(pc)
    assert _kernel_scales(pc) == {"good": 16, "bad": 16} and _kernel_scales(pt) == {"good": 1, "bad": 1}
    assert _kernel_scales(mixed) == {"good": 1, "bad": 16}
    # Every layer swapped is the per-tensor model, none swapped is the per-channel model, exactly.
    assert np.array_equal(_outputs(mix(pc, pt, names), samples[:10]), _outputs(pt, samples[:10]))
    assert mix(pc, pt, []) == pc
    with pytest.raises(ConversionError, match="no int8 weighted op"):
        mix(pc, pt, ["no/such/layer"])


def test_repair_keeps_per_channel_only_where_per_tensor_breaks(disparate):
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.repair import repair_int8

    model, x, y, _, _ = disparate
    flatbuffer, report = repair_int8(model, x[:100], y[:100], budget=0.25, max_float=0, runs=3)
    by = {t["granularity"]: t for t in report["trials"]}
    assert by["per_channel"]["drop"] <= 0.25 < by["per_tensor"]["drop"]  # the case per-layer choice is for
    chosen = report["chosen"]
    assert chosen["granularity"] == "mixed" and report["within_budget"]
    assert any("/bad/" in n for n in chosen["per_channel_layers"])
    assert any("/good/" in n for n in chosen["per_tensor_layers"])
    assert chosen["bytes"] == len(flatbuffer) < by["per_channel"]["bytes"]
    assert _kernel_scales(flatbuffer) == {"good": 1, "bad": 16}
    # Held out (never seen by the repair): the mixed file is as good as per-channel there too.
    tfl = TFLiteModel(flatbuffer)
    held = float(np.mean(np.argmax(np.concatenate([tfl(c[None]) for c in x[100:]]), -1) == y[100:]))
    assert 1.0 - held <= 0.3
