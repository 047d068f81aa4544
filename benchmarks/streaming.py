"""Clip vs streaming forms of the causal TSM model, float32 and int8, in one run.

Trains the demo model with causal shifts on the built-in motion set, then measures:
- stream == clip: max |logit difference| after 16 streamed frames vs the 16-frame clip model (float);
- int8 stream vs float stream top-1 agreement over every frame of real footage (>= 300 distinct
  frames: the two mp4s Debian's python3-imageio ships, or --footage ...), each clip streamed from
  zero state;
- accuracy of the clip and streaming models, float32 and int8, through LiteRT (int8 states
  requantized between steps), on a test set of its own (280 clips, another seed);
- one streaming step's p50 latency over one T=8 clip inference's (same resolution, same threads);
- sizes and every state's input/output quantization.

int8 is made as `tfkit convert` makes it by default: post-training int8 with optimized kernel
rounding (ConvertConfig.rounding, tfkit.convert.rounding), recorded as `int8_rounding`.

    python benchmarks/streaming.py --out out/streaming --json out/streaming.json [--epochs 20]

`benchmarks/zoo.py` runs this as its streaming part.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _emit import emit

_IMAGEIO = Path("/usr/lib/python3/dist-packages/imageio/resources/images")
FOOTAGE = _IMAGEIO / "cockatoo.mp4"  # 280 frames, 1280x720
# The real footage Debian's python3-imageio ships: 280 + 36 = 316 distinct frames, two scenes.
FOOTAGE_CLIPS = (FOOTAGE, _IMAGEIO / "realshort.mp4")


def load_footage(paths, size: int) -> list[tuple[Path, np.ndarray]]:
    """Every frame of each video, resized and center-cropped to `size`, normalized to [-1, 1], by
    streaming decode (each frame shrunk as it is decoded; no whole video at full size in memory)."""
    from tfkit.data import normalize, probe, read_frames_at, resize_crop

    out = []
    for path in paths:
        count = probe(path).frames
        frames = read_frames_at(path, range(count), short_side=size, transform=lambda f: resize_crop(f, size))
        out.append((Path(path), normalize(frames, "symmetric")))
    return out


def p50_ms(fn, runs: int = 200, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--footage", type=Path, action="append", default=None,
                    help="a real video (repeatable; default: the two python3-imageio ships)")
    ap.add_argument("--footage-frames", type=int, default=300, help="fewest distinct footage frames")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    emit(measure_streaming(args.out, epochs=args.epochs, footage=args.footage or FOOTAGE_CLIPS,
                           min_footage_frames=args.footage_frames,
                           threads=args.threads), args.json)


def measure_streaming(out: Path, *, epochs: int = 20, footage=FOOTAGE_CLIPS, min_footage_frames: int = 300,
                      threads: int = 2, test_per_class: int = 40, seed: int = 0) -> dict:
    """Train the causal demo model on the built-in set and measure its clip and streaming forms;
    int8 agreement over every frame of `footage` (videos), at least `min_footage_frames` of them.
    `seed` is the training seed (initial weights, shuffling, augmentation, dropout); the data are
    the same for every seed."""
    missing = [str(p) for p in footage if not Path(p).is_file()]
    if missing:
        sys.exit(f"no real footage at {', '.join(missing)}: apt-get install python3-imageio, or pass --footage VIDEO")
    from ai_edge_litert.interpreter import Interpreter

    from tfkit.convert.parity import TFLiteModel, run_stream_tflite, state_quantization
    from tfkit.convert.rounding import optimize_int8
    from tfkit.convert.tflite import convert_keras
    from tfkit.data import generate_motion_dataset, load_dataset, normalize
    from tfkit.data.synthetic import MOTION_SYMMETRIES
    from tfkit.models import build, run_stream, to_streaming
    from tfkit.models.io import save_model
    from tfkit.models.streaming import stream_calibration
    from tfkit.pipeline import DEMO_MODEL
    from tfkit.steps.convert import ConvertConfig
    from tfkit.train import TrainConfig, train_classifier
    from tfkit.types import ClipSpec

    t_start = time.perf_counter()
    clip_spec = ClipSpec(frames=8, size=32)
    root = generate_motion_dataset(out / "videos", progress=False)
    ds = load_dataset(root, clip_spec, progress=False)
    spec = replace(DEMO_MODEL, num_classes=len(ds.classes), frames=8, size=32, causal=True, seed=seed)
    model = build(spec)
    trained = train_classifier(model, ds.train, ds.val, TrainConfig(epochs=epochs, seed=seed), progress=False,
                               symmetries=MOTION_SYMMETRIES)
    save_model(model, out / "clip_model.keras")  # benchmarks/zoo.py fine-tunes it with QAT
    stream = to_streaming(model, spec)

    # stream == clip over 16 frames: the weights do not depend on T; the stream's averaging window
    # is the spec's frames, so both forms are built for 16.
    clip16 = build(replace(spec, frames=16))
    clip16.set_weights(model.get_weights())
    stream16 = to_streaming(model, replace(spec, frames=16))
    long = generate_motion_dataset(out / "videos16", videos_per_class=2, frames=40, seed=1, progress=False)
    x16 = normalize(load_dataset(long, ClipSpec(frames=16, size=32), val_fraction=0.5, progress=False).val.x,
                    "symmetric")
    stream_vs_clip = max(float(np.abs(run_stream(stream16, c)[-1] - np.asarray(clip16(c[None]))[0]).max())
                         for c in x16)

    train_x = normalize(ds.train.x, "symmetric")
    rng = np.random.default_rng(0)
    calib_clips = train_x[rng.permutation(len(train_x))[:48]]
    clip_samples = [c[None] for c in calib_clips]
    stream_samples = list(stream_calibration(stream, calib_clips, every=2))
    flat = {
        "clip_float32": convert_keras(model, "float32"),
        "clip_int8": convert_keras(model, "int8", calibration=clip_samples),
        "stream_float32": convert_keras(stream, "float32"),
        "stream_int8": convert_keras(stream, "int8", calibration=stream_samples),
    }
    # int8 as `tfkit convert` makes it by default (ConvertConfig.rounding): kernels re-rounded for
    # layer output error on the same calibration samples (tfkit.convert.rounding).
    rounding = {"rounding": ConvertConfig().rounding}
    if rounding["rounding"] == "optimized":
        for name, net, samples in (("clip_int8", model, clip_samples), ("stream_int8", stream, stream_samples)):
            flat[name], report = optimize_int8(net, flat[name], samples)
            rounding[name] = {k: report[k] for k in ("layers", "weights_changed", "output_error_ratio", "samples")}
    for name, fb in flat.items():
        (out / f"{name}.tflite").write_bytes(fb)

    # Accuracy on a test set of its own (another seed, never seen in training or model selection):
    # on the 84 validation clips one clip is 1.2 points, coarser than the 1-point int8 goal.
    test_root = generate_motion_dataset(out / "test_videos", videos_per_class=test_per_class, seed=7,
                                        progress=False)
    test = load_dataset(test_root, clip_spec, val_fraction=0.0, progress=False).train
    test_x, test_y = normalize(test.x, "symmetric"), test.y
    accuracy = {}
    for name in ("clip_float32", "clip_int8"):
        m = TFLiteModel(flat[name])
        accuracy[name] = float(np.mean([np.argmax(m(c[None])) == y for c, y in zip(test_x, test_y)]))
    for name in ("stream_float32", "stream_int8"):
        accuracy[name] = float(np.mean([np.argmax(run_stream_tflite(flat[name], c)[-1]) == y
                                        for c, y in zip(test_x, test_y)]))

    # Distinct frames only (no clip looped); each video streamed from zero state, like a new video.
    real = load_footage(footage, 32)
    distinct = len({frame.tobytes() for _, frames in real for frame in frames})  # as the model sees them
    if distinct < min_footage_frames:
        sys.exit(f"the footage holds {distinct} distinct frames, fewer than {min_footage_frames}: pass more --footage videos")
    logits = [(run_stream_tflite(flat["stream_float32"], frames), run_stream_tflite(flat["stream_int8"], frames))
              for _, frames in real]
    same = [np.argmax(f, -1) == np.argmax(q, -1) for f, q in logits]
    agreement = float(np.mean(np.concatenate(same)))
    # How close the float model's own top two were where int8 disagrees: near-ties flip on rounding.
    top2 = np.sort(np.concatenate([f for f, _ in logits]), -1)[:, -2:]
    margin, flipped = top2[:, 1] - top2[:, 0], ~np.concatenate(same)

    latency = {}
    for name in ("clip_float32", "stream_float32", "clip_int8", "stream_int8"):
        it = Interpreter(model_content=flat[name], num_threads=threads)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        latency[name] = p50_ms(it.invoke)

    states = state_quantization(flat["stream_int8"])
    partitions = {name: TFLiteModel(fb).xnnpack_partitions() for name, fb in flat.items()}
    result = {
        "classes": list(ds.classes), "epochs": epochs, "seed": seed, "val_clips": len(ds.val.y),
        "test_clips": len(test_y), "accuracy_on": "test set (its own seed; accuracy keys)",
        "keras_clip_val_accuracy": trained.val_accuracy,
        "stream_vs_clip_max_abs_logit_diff_16_frames": stream_vs_clip,
        "accuracy": accuracy,
        "int8_minus_float32_accuracy": {"clip": accuracy["clip_int8"] - accuracy["clip_float32"],
                                        "stream": accuracy["stream_int8"] - accuracy["stream_float32"]},
        "footage": [str(p) for p, _ in real], "footage_frames": sum(len(f) for _, f in real),
        "footage_distinct_frames": distinct,
        "footage_frames_per_clip": {p.name: len(f) for p, f in real},
        "footage_agreement_per_clip": {p.name: float(np.mean(a)) for (p, _), a in zip(real, same)},
        "footage_float32_top2_margin_median": {"all": float(np.median(margin)),
                                               "where_int8_disagrees": float(np.median(margin[flipped]))
                                               if flipped.any() else None},
        "stream_int8_vs_float32_top1_agreement_on_footage": agreement,
        "int8_rounding": rounding,
        "latency_p50_ms": latency, "threads": threads,
        "stream_step_over_clip_T8": {"float32": latency["stream_float32"] / latency["clip_float32"],
                                     "int8": latency["stream_int8"] / latency["clip_int8"]},
        "size_bytes": {k: len(v) for k, v in flat.items()},
        "xnnpack_partitions": partitions,
        "float32_over_int8_size": {"clip": len(flat["clip_float32"]) / len(flat["clip_int8"]),
                                   "stream": len(flat["stream_float32"]) / len(flat["stream_int8"])},
        "states": len(states), "states_with_different_in_out_quantization": sum(not r["same"] for r in states),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "goals": {"stream_vs_clip_max": 1e-4, "int8_agreement_min": 0.98, "int8_accuracy_gap_max": 0.01,
                  "stream_step_over_clip_max": 0.2, "float32_over_int8_size_min": 3.9},
    }
    return result


if __name__ == "__main__":
    main()
