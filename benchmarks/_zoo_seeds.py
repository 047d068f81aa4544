"""benchmarks/zoo.py's int8 figures over training seeds (issue 27): the streaming part and the
default model's QAT run once per seed, and the headline keys hold the worst case over seeds
(their `_mean` twins the mean).

Example:
    >>> seed_keys([{"agreement": 0.99, ...}, ...])  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# headline key -> (per-seed key, which end is worst)
WORST = {
    "stream_int8_top1_agreement": ("agreement", min),
    "clip_int8_accuracy_drop": ("clip_drop", max),
    "stream_int8_accuracy_drop": ("stream_drop", max),
    "stream_clip_max_abs_diff": ("stream_vs_clip", max),
    "stream_step_over_clip_latency": ("step_over_clip", max),
    "qat_minus_ptq_int8_accuracy": ("qat_minus_ptq", min),
    "stream_int8_xnnpack_ops_outside": ("xnnpack_ops_outside", max),
    # The stream form of the QAT-tuned weights (`--qat-epochs N --form stream`): agreement with its
    # own float stream; drop against the float model as trained (before QAT).
    "qat_stream_int8_top1_agreement": ("qat_stream_agreement", min),
    "qat_stream_int8_accuracy_drop": ("qat_stream_drop", max),
}
VERDICTS = ("full", "partial", "none")  # best to worst


def per_seed(s: dict, qat: dict | None, delegation: dict) -> dict:
    """One seed's int8 figures from its streaming result, its QAT result and its stream graph's
    delegate coverage."""
    acc = s["accuracy"]
    row = {"seed": s["seed"], "agreement": s["stream_int8_vs_float32_top1_agreement_on_footage"],
           "clip_drop": acc["clip_float32"] - acc["clip_int8"], "stream_drop": acc["stream_float32"] - acc["stream_int8"],
           "stream_vs_clip": s["stream_vs_clip_max_abs_logit_diff_16_frames"],
           "step_over_clip": max(s["stream_step_over_clip_T8"].values()),
           "ptq_int8_accuracy": acc["clip_int8"], "float32_accuracy": acc["clip_float32"],
           "keras_val_accuracy": s["keras_clip_val_accuracy"], **delegation}
    if qat:
        row["qat_int8_accuracy"] = qat["qat_int8_accuracy"]
        row["qat_minus_ptq"] = qat["qat_int8_accuracy"] - acc["clip_int8"]
        row["qat_stream_agreement"] = qat["stream_int8_top1_agreement_on_footage"]
        row["qat_stream_drop"] = acc["stream_float32"] - qat["stream_accuracy"]["int8"]  # vs the float model trained
    return row


def seed_keys(rows: list[dict]) -> dict:
    """Worst case (the existing keys) and mean (`<key>_mean`) over the seeds' rows."""
    out: dict = {"int8_seeds": len(rows), "int8_seed_values": [r["seed"] for r in rows]}
    for key, (field, worst) in WORST.items():
        values = [r[field] for r in rows if r.get(field) is not None]
        out[key] = worst(values) if values else None
        out[f"{key}_mean"] = float(np.mean(values)) if values else None
    verdicts = [r["edgetpu_verdict"] for r in rows if r.get("edgetpu_verdict")]
    out["stream_int8_edgetpu_verdict"] = max(verdicts, key=VERDICTS.index) if verdicts else None
    out["int8_per_seed"] = rows
    return out


def stream_delegation(tflite: Path) -> dict:
    """Ops of the int8 stream graph outside XNNPACK (measured in this host's LiteRT) and the
    Edge TPU's verdict (edgetpu_compiler when installed, else tfkit's static rules)."""
    from tfkit.delegates import check_bytes

    cov = {c.delegate: c for c in check_bytes(Path(tflite).read_bytes(), ["xnnpack", "edgetpu"])}
    x, e = cov["xnnpack"], cov["edgetpu"]
    return {"xnnpack_ops_outside": x.ops_total - x.ops_delegated, "xnnpack_partitions": x.partitions,
            "xnnpack_source": x.source, "edgetpu_verdict": e.verdict,
            "edgetpu_ops": f"{e.ops_delegated}/{e.ops_total}", "edgetpu_source": e.source}


def qat_default_model(streaming_dir: Path, epochs: int | None, footage, log) -> dict | None:
    """QAT (tfkit's default recipe: ranges calibrated on 48 training clips, then train_qat) on one
    seed's trained clip model; int8 accuracy through LiteRT on the streaming part's own test set,
    the set its post-training int8 accuracy was measured on. Then the stream form built from the
    QAT-tuned weights (`float_from_qat`; states calibrated as the streaming part calibrates them):
    its int8/float top-1 agreement over every frame of `footage`, and its int8 test accuracy."""
    from dataclasses import replace

    from streaming import load_footage

    from tfkit.convert.parity import TFLiteModel, run_stream_tflite
    from tfkit.convert.qat import convert_qat, float_from_qat, quantize_aware, train_qat
    from tfkit.convert.tflite import convert_keras
    from tfkit.data import load_dataset, normalize
    from tfkit.data.synthetic import MOTION_SYMMETRIES
    from tfkit.models import to_streaming
    from tfkit.models.io import load_model
    from tfkit.models.streaming import stream_calibration
    from tfkit.pipeline import DEMO_MODEL
    from tfkit.train import TrainConfig
    from tfkit.types import ClipSpec

    model_file = streaming_dir / "clip_model.keras"
    if not model_file.is_file():
        return None
    model = load_model(model_file)
    clip = ClipSpec(frames=8, size=32)
    ds = load_dataset(streaming_dir / "videos", clip, progress=False)
    test = load_dataset(streaming_dir / "test_videos", clip, val_fraction=0.0, progress=False).train
    train_x, test_x = normalize(ds.train.x, "symmetric"), normalize(test.x, "symmetric")
    calib = train_x[np.random.default_rng(0).permutation(len(train_x))[:48]]  # PTQ's calibration clips
    qat = quantize_aware(model, calibration=calib)
    config = TrainConfig(epochs=epochs, learning_rate=2e-4) if epochs else None
    trained = train_qat(qat, ds.train, ds.val, config, progress=False, symmetries=MOTION_SYMMETRIES)
    tfl = TFLiteModel(convert_qat(qat, calibration=[c[None] for c in calib]))
    acc = float(np.mean([np.argmax(tfl(c[None])) == y for c, y in zip(test_x, test.y)]))
    # The stream form of the QAT-tuned weights, converted as the streaming part converts its own.
    spec = replace(DEMO_MODEL, num_classes=len(ds.classes), frames=8, size=32, causal=True)
    stream = to_streaming(float_from_qat(qat, model), spec)
    flat = {"float32": convert_keras(stream, "float32"),
            "int8": convert_keras(stream, "int8", calibration=stream_calibration(stream, calib, every=2))}
    real = load_footage(footage, 32)
    same = np.concatenate([np.argmax(run_stream_tflite(flat["float32"], f), -1)
                           == np.argmax(run_stream_tflite(flat["int8"], f), -1) for _, f in real])
    stream_acc = {p: float(np.mean([np.argmax(run_stream_tflite(fb, c)[-1]) == y for c, y in zip(test_x, test.y)]))
                  for p, fb in flat.items()}
    log(f"[qat] {streaming_dir.name}: QAT int8 test accuracy {acc:.3f}; its stream int8 agreement "
        f"{same.mean():.3f}, accuracy {stream_acc['int8']:.3f}")
    return {"qat_epochs": config.epochs if config else "train_qat default (6 epochs, lr 2e-4, BN frozen)",
            "qat_keras_val_accuracy": trained.val_accuracy, "qat_int8_accuracy": acc, "accuracy_on": "test set",
            "xnnpack_partitions": tfl.xnnpack_partitions(), "float_activation_tensors": tfl.float_activation_count(),
            "stream_int8_top1_agreement_on_footage": float(same.mean()), "stream_accuracy": stream_acc,
            "stream_footage_frames": int(same.size)}
