"""The video model zoo's numbers in one run, written as JSON (issue 3's interface):

    python benchmarks/zoo.py --quick --json OUT.json     # ~15 min on 2 cores
    python benchmarks/zoo.py --json OUT.json             # full sizes

1. Streaming: the causal demo model trained on the built-in motion set; stream == clip over 16
   frames; int8 vs float top-1 agreement over >= 300 streamed frames of real footage (an mp4 that
   Debian's python3-imageio ships); int8 accuracy drop of the clip and streaming forms (through
   LiteRT); one streaming step over one T=8 clip inference.
2. QAT: a short TFMOT fine-tune of that model, int8 accuracy next to post-training int8; and (full
   mode) QAT on every zoo model (all layers wrapped, full int8, float activations, partitions).
3. Sweep: every zoo backbone x temporal module, clip and streaming forms, in every precision
   (quick: float32, float16, int8): builtin-only ops, float16 GPU analyzer verdict, XNNPACK
   partitions, float32/int8 size and latency. Untrained weights with BatchNorm statistics from
   real footage (sizes, ops and latency do not depend on training).
4. Generation: frame interpolation and x2/x4 super-resolution trained self-supervised on real
   footage; float32 and int8 PSNR on held-out footage against linear blend / bicubic.
5. Anchor: our default streaming model at 172x172 per frame (1 thread, float32 and int8) over the
   MoViNet-A0-Stream architecture's (benchmarks/movinet_anchor.py; null with the reason when its
   TF Model Garden dependencies are not installed: benchmarks/setup_movinet_anchor.sh).

Latencies are medians; this machine is shared, so compare ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _emit import emit
from streaming import FOOTAGE, measure_streaming

ANCHOR_SIZE = 172


def footage_clips(path: Path, frames: int, size: int, count: int) -> np.ndarray:
    """`count` clips of `frames` consecutive frames of real footage, resized, normalized [-1, 1]."""
    from tfkit.data import normalize, read_frames, resize_crop

    video = resize_crop(read_frames(path), size)
    starts = np.linspace(0, len(video) - frames, count).astype(int)
    return normalize(np.stack([video[s:s + frames] for s in starts]), "symmetric")


def per_frame_ms(flatbuffer: bytes, frames: int = 60, threads: int = 1) -> dict:
    """A streaming model's per-frame cost through its signature runner with state feedback (the
    way an app runs it): median wall ms and CPU ms per frame."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner()
    ins = runner.get_input_details()
    feed = {name: np.zeros(d["shape"], d["dtype"]) for name, d in ins.items()}
    feedback = {name: name.removesuffix("_in") + "_out" for name in ins if name != "frame"}
    wall, cpu = [], []
    for i in range(frames + 10):
        w0, c0 = time.perf_counter(), time.process_time()
        out = runner(**feed)
        if i >= 10:
            wall.append((time.perf_counter() - w0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        feed.update({name: out[o] for name, o in feedback.items()})  # same dtype; qparams aside
    return {"ms_per_frame": statistics.median(wall), "cpu_ms_per_frame": statistics.median(cpu)}


def sweep_part(quick: bool, footage: Path, log) -> dict:
    from tfkit.convert.sweep import summarize, sweep_zoo, zoo_specs
    from tfkit.models import VideoModelSpec

    if quick:
        base = VideoModelSpec(num_classes=7, frames=4, size=64, alpha=0.5, stages=4, causal=True)
        precisions = ["float32", "float16", "int8"]
    else:  # the whole backbones at full width
        base = VideoModelSpec(num_classes=7, frames=8, size=128, alpha=1.0, stages=7, causal=True)
        precisions = None  # every registered precision
    clips = footage_clips(footage, base.frames, base.size, 8)
    rows = sweep_zoo(zoo_specs(base), clips, precisions=precisions, workers=2, threads=1,
                     latency_runs=30 if quick else 100, log=log)
    return {"base_spec": base.to_dict(), "rows": rows, **summarize(rows), "models": sorted({r["model"] for r in rows})}


def qat_part(streaming_dir: Path, streaming: dict | None, quick: bool, log) -> dict:
    """QAT (TFMOT, tfkit's layer rules) on the trained default clip model: int8 accuracy through
    LiteRT after a short QAT fine-tune, next to post-training int8; then QAT on every zoo model
    (untrained, tiny): every layer wrapped, full int8 with no float activations, XNNPACK partitions."""
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.qat import (
        convert_qat,
        inspect_int8,
        quantize_aware,
        quantized_layer_coverage,
        train_qat,
    )
    from tfkit.convert.sweep import calibrate_batchnorm, zoo_specs
    from tfkit.data import load_dataset, normalize
    from tfkit.data.synthetic import MOTION_SYMMETRIES
    from tfkit.models import VideoModelSpec, build
    from tfkit.models.io import load_model
    from tfkit.train import TrainConfig
    from tfkit.types import ClipSpec

    result: dict = {}
    model_file = streaming_dir / "clip_model.keras"
    if model_file.is_file():
        model = load_model(model_file)
        ds = load_dataset(streaming_dir / "videos", ClipSpec(frames=8, size=32), progress=False)
        epochs = 2 if quick else 4
        qat = quantize_aware(model)
        trained = train_qat(qat, ds.train, ds.val, TrainConfig(epochs=epochs, learning_rate=2e-4, augment=True),
                            progress=False, symmetries=MOTION_SYMMETRIES)
        train_x, val_x = normalize(ds.train.x, "symmetric"), normalize(ds.val.x, "symmetric")
        calib = train_x[np.random.default_rng(0).permutation(len(train_x))[:48]]
        tfl = TFLiteModel(convert_qat(qat, calibration=[c[None] for c in calib]))
        acc = float(np.mean([np.argmax(tfl(c[None])) == y for c, y in zip(val_x, ds.val.y)]))
        result["default_model"] = {
            "qat_epochs": epochs, "qat_keras_val_accuracy": trained.val_accuracy, "qat_int8_accuracy": acc,
            "ptq_int8_accuracy": (streaming or {}).get("accuracy", {}).get("clip_int8"),
            "float32_accuracy": (streaming or {}).get("accuracy", {}).get("clip_float32"),
            "xnnpack_partitions": tfl.xnnpack_partitions(), "float_activation_tensors": tfl.float_activation_count()}
        log(f"[qat] default model: QAT int8 accuracy {acc:.3f}")
    else:
        result["default_model"] = None
        result["default_model_reason"] = f"no trained model at {model_file} (run the streaming part first)"
    if quick:  # every zoo model's QAT conversion takes ~50 s here: full mode only
        return result
    tiny = VideoModelSpec(num_classes=7, frames=4, size=32, alpha=0.35, stages=4, causal=True)
    rows = []
    for spec in zoo_specs(tiny):
        clips = np.random.default_rng(1).uniform(-1, 1, (6, *spec.input_shape)).astype(np.float32)
        qat = quantize_aware(calibrate_batchnorm(build(spec), clips))
        coverage = quantized_layer_coverage(qat)
        summary = inspect_int8(convert_qat(qat, calibration=[c[None] for c in clips], strict=False)).summary()
        rows.append({"model": spec.name, **{k: len(v) for k, v in coverage.items()},
                     **{k: summary[k] for k in ("bytes", "float_activations", "xnnpack_partitions")}})
        log(f"[qat] {spec.name}: {rows[-1]}")
    result["zoo"] = rows
    return result


def anchor_part(streaming_spec, footage: Path, quick: bool, skip: bool, timeout: int, log) -> dict:
    """Ours vs MoViNet-A0-Stream per frame at 172x172, 1 thread, float32 and int8."""
    from tfkit.convert.sweep import calibrate_batchnorm
    from tfkit.convert.tflite import convert_keras
    from tfkit.models import build, to_streaming
    from tfkit.models.streaming import stream_calibration

    spec = replace(streaming_spec, size=ANCHOR_SIZE)
    clips = footage_clips(footage, spec.frames, ANCHOR_SIZE, 4)
    model = calibrate_batchnorm(build(spec), clips)
    stream = to_streaming(model, spec)
    ours = {"float32": per_frame_ms(convert_keras(stream, "float32")),
            "int8": per_frame_ms(convert_keras(stream, "int8", calibration=stream_calibration(stream, clips, every=2)))}
    log(f"[anchor] ours at {ANCHOR_SIZE}: " + ", ".join(f"{k} {v['ms_per_frame']:.2f} ms" for k, v in ours.items()))
    result = {"ours": ours, "ours_spec": spec.to_dict(), "movinet_a0_stream": None, "reason": None}
    if skip:
        result["reason"] = "skipped (--no-anchor)"
        return result
    from _movinet import movinet_a0_stream_latency

    anchor, why = movinet_a0_stream_latency(size=ANCHOR_SIZE, threads=1, timeout=timeout)
    result["movinet_a0_stream"], result["reason"] = anchor, why
    if anchor:
        result["ratio"] = {
            "float32": ours["float32"]["ms_per_frame"] / anchor["float32_ms_per_frame"],
            "int8": ours["int8"]["ms_per_frame"] / anchor["int8_ms_per_frame"],
            "float32_cpu": ours["float32"]["cpu_ms_per_frame"] / anchor["float32_cpu_ms_per_frame"],
            "int8_cpu": ours["int8"]["cpu_ms_per_frame"] / anchor["int8_cpu_ms_per_frame"],
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and fewer precisions (~15 min on 2 cores)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 20 quick, 30 full)")
    ap.add_argument("--no-anchor", action="store_true", help="do not build/run MoViNet-A0-Stream")
    ap.add_argument("--anchor-timeout", type=int, default=900)
    ap.add_argument("--only", choices=["streaming", "qat", "sweep", "generation", "anchor"], action="append",
                    help="run only these parts (repeatable)")
    args = ap.parse_args()
    if not args.footage.is_file():
        raise SystemExit(f"no real footage at {args.footage}: apt-get install python3-imageio, or pass --footage VIDEO")
    parts = set(args.only or ["streaming", "qat", "sweep", "generation", "anchor"])
    out = args.out or Path(tempfile.mkdtemp(prefix="tfkit-zoo-"))
    t_start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)
    result: dict = {"quick": args.quick, "footage": str(args.footage), "seconds": {}}

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        result["seconds"][name] = round(time.perf_counter() - t0, 1)
        if args.json:  # partial results survive a later failure
            emit(result, args.json)
        return value

    from tfkit.pipeline import DEMO_MODEL

    streaming_spec = replace(DEMO_MODEL, num_classes=7, frames=8, size=32, causal=True)
    if "streaming" in parts:
        epochs = args.epochs or (20 if args.quick else 30)  # width 0.5 needs ~20 (12 epochs: val 0.45)
        s = timed("streaming", lambda: measure_streaming(out / "streaming", epochs=epochs, footage=args.footage,
                                                         footage_frames=300, threads=1))
        acc = s["accuracy"]
        result.update({
            "stream_clip_max_abs_diff": s["stream_vs_clip_max_abs_logit_diff_16_frames"],
            "stream_int8_top1_agreement": s["stream_int8_vs_float32_top1_agreement_on_footage"],
            "stream_int8_frames": s["footage_frames"],
            "clip_int8_accuracy_drop": acc["clip_float32"] - acc["clip_int8"],
            "stream_int8_accuracy_drop": acc["stream_float32"] - acc["stream_int8"],
            "stream_step_over_clip_latency": max(s["stream_step_over_clip_T8"].values()),
            "streaming": s,
        })
    if "qat" in parts:
        result["qat"] = timed("qat", lambda: qat_part(out / "streaming", result.get("streaming"), args.quick, log))
    if "sweep" in parts:
        sweep = timed("sweep", lambda: sweep_part(args.quick, args.footage, log))
        result.update({k: sweep[k] for k in ("min_int8_size_reduction", "max_int8_xnnpack_partitions",
                                             "max_int8_over_float_latency", "all_builtin_only",
                                             "all_float16_gpu_compatible", "models")})
        result["sweep"] = sweep
    if "generation" in parts:
        from tfkit.gen import run_generation_benchmark

        gen = timed("generation", lambda: run_generation_benchmark(quick=args.quick))
        result.update({k: gen.get(k) for k in ("interp_psnr_float_db", "interp_psnr_int8_db", "interp_psnr_baseline_db",
                                               "sr_psnr_float_db", "sr_psnr_int8_db", "sr_psnr_baseline_db")})
        result["generation"] = gen
    if "anchor" in parts:
        anchor = timed("anchor", lambda: anchor_part(streaming_spec, args.footage, args.quick, args.no_anchor,
                                                     args.anchor_timeout, log))
        ratio = anchor.get("ratio")
        result["stream_over_movinet_a0_latency"] = max(ratio["float32"], ratio["int8"]) if ratio else None
        result["stream_over_movinet_a0_latency_reason"] = anchor["reason"]
        result["anchor"] = anchor
    result["goals"] = {"stream_clip_max_abs_diff": "<= 1e-4", "stream_int8_top1_agreement": ">= 0.98",
                       "stream_int8_frames": ">= 300", "clip_int8_accuracy_drop": "<= 0.01",
                       "stream_int8_accuracy_drop": "<= 0.01", "stream_step_over_clip_latency": "<= 0.2",
                       "interp/sr int8 PSNR": ">= baseline + 1 dB", "min_int8_size_reduction": ">= 3.9",
                       "max_int8_xnnpack_partitions": "<= 2", "max_int8_over_float_latency": "<= 1.0",
                       "stream_over_movinet_a0_latency": "<= 0.5"}
    result["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
