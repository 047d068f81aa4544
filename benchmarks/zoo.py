"""The video model zoo's numbers in one run, written as JSON (issue 3's interface):

    python benchmarks/zoo.py --quick --json OUT.json     # ~17 min on 2 cores
    python benchmarks/zoo.py --json OUT.json             # full sizes

1. Streaming, once per training seed (--seeds, default 0 1 2; the headline keys are the worst case
   over seeds, `<key>_mean` the mean, `int8_per_seed` each seed): the causal demo model trained on
   the built-in motion set; stream == clip over 16 frames; int8 vs float top-1 agreement over every
   frame of real footage (the two mp4s Debian's python3-imageio ships: 316 distinct frames, none
   looped); int8 accuracy drop of the clip and streaming forms (through LiteRT); one streaming step
   over one T=8 clip inference; the int8 stream graph's ops outside XNNPACK and its Edge TPU verdict.
2. QAT, per seed: tfkit's QAT recipe on that seed's model, int8 accuracy on the same test set as
   post-training int8 (`qat_minus_ptq_int8_accuracy`); the stream form of the QAT-tuned weights
   (`tfkit convert --qat-epochs N --form stream`): `qat_stream_int8_top1_agreement` on the same
   footage, `qat_stream_int8_accuracy_drop` against the float model before QAT; and (full mode) QAT on every zoo model (all
   layers wrapped, full int8, float activations, partitions).
3. Repair: `tfkit convert --precision int8 --repair auto` (benchmarks/repair.py, first seed): the
   default model (quick: width 0.5, 4 stages; full: width 1.0, 7 stages) trained on the built-in
   motion set, with an outlier channel put in front of its classifier; plain int8's drop on a fresh
   held-out test set of 1050 clips (`repair_drop_before`) and the repaired one's (`repair_drop_after`),
   with their standard errors (`*_se`), what the repair changed, and
   `min_int8_size_reduction_repaired` (float32 over the smallest int8 file of the default model
   within 1 point, with --repair auto choosing granularity).
4. Sweep: every zoo backbone x temporal module, clip and streaming forms, in every precision
   (quick: float32, float16, int8): builtin-only ops, float16 GPU analyzer verdict, XNNPACK
   partitions, float32/int8 size and latency. Untrained weights with BatchNorm statistics from
   real footage (sizes, ops and latency do not depend on training).
5. Generation: frame interpolation and x2/x4 super-resolution trained self-supervised on real
   footage; float32 and int8 PSNR on held-out footage against linear blend / bicubic.
6. Anchor: per frame at 172x172, 1 thread, float32 and int8, against the MoViNet-A0-Stream
   architecture (benchmarks/movinet_anchor.py; null with the reason when its TF Model Garden
   dependencies are not installed: benchmarks/setup_movinet_anchor.sh): our benchmark stream model
   (MobileNetV2, 3 of 7 stages, width 0.5: ~29.5 M MACs) and the same model scaled to MoViNet's
   50.7 M MACs (width 0.65; and 6 stages at width 0.5), MACs/params counted off each .tflite,
   GMAC/s; every model timed by tfkit.bench.timing (fresh process, same seeded frames, step with
   state copies and bare invoke).

Latencies are medians; this machine is shared, so compare ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _emit import emit
from _zoo_seeds import per_seed, qat_default_model, seed_keys, stream_delegation
from repair import goals as repair_goals
from repair import measure_repair
from streaming import FOOTAGE_CLIPS, measure_streaming

ANCHOR_SIZE = 172
# The sweep's base spec (the full one is the whole backbone at full width; benchmarks/repair.py's --full
# trains the same backbone), by --quick.
SWEEP_BASE = {True: {"frames": 4, "size": 64, "alpha": 0.5, "stages": 4},
              False: {"frames": 8, "size": 128, "alpha": 1.0, "stages": 7}}
# The repair part's headline keys, copied to the top level (the whole result is under "repair").
REPAIR_KEYS = ("repair_drop_before", "repair_drop_after", "repair_drop_before_se", "repair_drop_after_se",
               "min_int8_size_reduction_repaired", "repair_changed_layers", "repair_granularity", "repair_kept_float")


def footage_clips(path: Path, frames: int, size: int, count: int) -> np.ndarray:
    """`count` clips of `frames` consecutive frames of real footage, resized, normalized [-1, 1]
    (streaming decode: only the frames needed, each shrunk as it is decoded)."""
    from tfkit.data import normalize, probe, read_frames_at, resize_crop

    starts = np.linspace(0, probe(path).frames - frames, count).astype(int)
    indices = (starts[:, None] + np.arange(frames)).ravel()
    video = read_frames_at(path, indices, short_side=size, transform=lambda f: resize_crop(f, size))
    return normalize(video.reshape(count, frames, *video.shape[1:]), "symmetric")


def sweep_part(quick: bool, footage: Path, log) -> dict:
    from tfkit.convert.sweep import summarize, sweep_zoo, zoo_specs
    from tfkit.models import VideoModelSpec

    base = VideoModelSpec(num_classes=7, **SWEEP_BASE[quick], causal=True)  # full: whole backbones, full width
    precisions = ["float32", "float16", "int8"] if quick else None  # None: every registered precision
    clips = footage_clips(footage, base.frames, base.size, 8)
    rows = sweep_zoo(zoo_specs(base), clips, precisions=precisions, workers=2, threads=1,
                     latency_runs=30 if quick else 100, log=log)
    return {"base_spec": base.to_dict(), "rows": rows, **summarize(rows), "models": sorted({r["model"] for r in rows})}


def qat_part(log) -> dict:
    """QAT on every zoo model (untrained, tiny; full mode): every layer wrapped, full int8 with no
    float activations, XNNPACK partitions. The default model's QAT against post-training int8,
    per seed, is the streaming part's (`_zoo_seeds.qat_default_model`)."""
    from tfkit.convert.qat import convert_qat, inspect_int8, quantize_aware, quantized_layer_coverage
    from tfkit.convert.sweep import calibrate_batchnorm, zoo_specs
    from tfkit.models import VideoModelSpec, build

    tiny = VideoModelSpec(num_classes=7, frames=4, size=32, alpha=0.35, stages=4, causal=True)
    rows = []
    for spec in zoo_specs(tiny):  # every zoo model's QAT conversion takes ~50 s here: full mode only
        clips = np.random.default_rng(1).uniform(-1, 1, (6, *spec.input_shape)).astype(np.float32)
        qat = quantize_aware(calibrate_batchnorm(build(spec), clips), calibration=clips)
        coverage = quantized_layer_coverage(qat)
        summary = inspect_int8(convert_qat(qat, calibration=[c[None] for c in clips], strict=False)).summary()
        rows.append({"model": spec.name, **{k: len(v) for k, v in coverage.items()},
                     **{k: summary[k] for k in ("bytes", "float_activations", "xnnpack_partitions")}})
        log(f"[qat] {spec.name}: {rows[-1]}")
    return {"zoo": rows}


# Our stream model scaled to MoViNet-A0-Stream's 50.7 M MACs per frame at the same 172x172 input
# (MACs off the .tflite: width: 50.9 M, +0.4%; depth: 53.0 M, +4.5%). Untrained (BatchNorm statistics
# from real footage): latency does not depend on the weights' values, only on their shapes.
EQUAL_MACS = {"equal_macs_width": {"alpha": 0.65, "stages": 3}, "equal_macs_depth": {"alpha": 0.5, "stages": 6}}
MACS_TOLERANCE = 0.10
PARTS = ["streaming", "qat", "repair", "sweep", "generation", "anchor"]  # in the order they run


def _our_stream(spec, clips, folder: Path) -> dict:
    """float32 and int8 .tflite of `spec`'s streaming form, its MACs and parameters."""
    from tfkit.convert.sweep import calibrate_batchnorm
    from tfkit.convert.tflite import convert_keras
    from tfkit.models import build, to_streaming
    from tfkit.models.streaming import stream_calibration
    from tfkit.optimize.cost import count_params, tflite_macs, tflite_params

    stream = to_streaming(calibrate_batchnorm(build(spec), clips), spec)
    flat = {"float32": convert_keras(stream, "float32"),
            "int8": convert_keras(stream, "int8", calibration=stream_calibration(stream, clips, every=2))}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for precision, blob in flat.items():
        paths[precision] = folder / f"{precision}.tflite"
        paths[precision].write_bytes(blob)
    return {"spec": spec.to_dict(), "tflite": {k: str(v) for k, v in paths.items()},
            "macs_per_frame": tflite_macs(flat["float32"]), "params": tflite_params(flat["float32"]),
            "keras_params": count_params(stream), "size_bytes": {k: len(v) for k, v in flat.items()},
            "input_range": (-1.0, 1.0), "frame_input": "frame"}


def anchor_part(streaming_spec, footage: Path, out: Path, quick: bool, skip: bool, timeout: int, log) -> dict:
    """Ours vs MoViNet-A0-Stream per frame at 172x172, 1 thread, float32 and int8: the benchmark
    model's architecture (the streaming part's, at 172) and our stream model scaled to MoViNet's MACs,
    all untrained (latency depends on shapes, not weight values),
    every model timed by tfkit.bench.timing (fresh process, same frames, step and bare invoke)."""
    from _movinet import MOVINET, compare, movinet_a0_stream_latency, ratios

    clips = footage_clips(footage, streaming_spec.frames, ANCHOR_SIZE, 4)
    specs = {"benchmark": replace(streaming_spec, size=ANCHOR_SIZE),
             **{name: replace(streaming_spec, size=ANCHOR_SIZE, **change) for name, change in EQUAL_MACS.items()}}
    models = {name: _our_stream(spec, clips, out / "anchor" / name) for name, spec in specs.items()}
    for name, m in models.items():
        log(f"[anchor] {name}: {m['macs_per_frame'] / 1e6:.1f} M MACs/frame, {m['params']} params")
    result: dict = {"ours": models, "movinet_a0_stream": None, "reason": None,
                    "untrained": "our models here are untrained (BatchNorm statistics from real footage): "
                                 "latency depends on shapes, not weight values"}
    if skip:
        result["reason"] = "skipped (--no-anchor)"
        return result
    anchor, why = movinet_a0_stream_latency(size=ANCHOR_SIZE, threads=1, timeout=timeout, measure=False)
    result["movinet_a0_stream"], result["reason"] = anchor, why
    if not anchor:
        return result
    movinet = {"tflite": anchor["tflite"], "macs_per_frame": anchor["macs_per_frame"], "params": anchor["params"],
               "input_range": tuple(anchor["input_range"]), "frame_input": "image"}
    for name in EQUAL_MACS:
        off = models[name]["macs_per_frame"] / movinet["macs_per_frame"] - 1
        models[name]["macs_vs_movinet"] = round(off, 4)
        if abs(off) > MACS_TOLERANCE:
            result.setdefault("warnings", []).append(f"{name}: MACs {off:+.1%} off MoViNet's")
    from tfkit.errors import BenchmarkError

    try:
        timed = compare({**models, MOVINET: movinet}, rounds=3 if quick else 5, log=log)
    except BenchmarkError as e:  # e.g. an int8 graph the host's timing child cannot run: said, not fatal
        result["reason"] = f"timing failed: {e}"
        log(f"[anchor] {result['reason']}")
        return result
    result["timed"] = timed
    result["ratio"] = {name: ratios(timed, name) for name in models}
    result["timing"] = ("tfkit.bench.timing: fresh process per model and round, seeded real-looking frames in each "
                        "model's input range, step = set frame + states, invoke, read outputs; invoke = bare invoke; "
                        "medians over rounds; ratios on the invoking thread's CPU time (1 thread)")
    return result


def anchor_keys(anchor: dict) -> dict:
    """The headline keys: latency ratios are the worse of float32 and int8 (thread CPU ms per frame,
    step mode); GMAC/s from the bare invoke's CPU time; `ours` is the benchmark model, `ours_equal_macs`
    the width-scaled one (closest MACs, same topology)."""
    ours, movinet = anchor["ours"], anchor.get("movinet_a0_stream")
    keys = {"stream_over_movinet_a0_latency": None, "stream_over_movinet_a0_latency_equal_macs": None,
            "gmacs_per_s_ours_over_movinet": None, "stream_over_movinet_a0_latency_reason": anchor["reason"],
            "stream_over_movinet_a0_latency_basis": "thread CPU ms/frame, 1 thread, step with state copies, "
                                                    "worse of float32/int8",
            "macs_per_frame_ours": ours["benchmark"]["macs_per_frame"], "params_ours": ours["benchmark"]["params"],
            "macs_per_frame_ours_equal_macs": ours["equal_macs_width"]["macs_per_frame"],
            "params_ours_equal_macs": ours["equal_macs_width"]["params"],
            "macs_per_frame_movinet": movinet and movinet["macs_per_frame"],
            "params_movinet": movinet and movinet["params"]}
    ratio, timed = anchor.get("ratio"), anchor.get("timed")
    if not ratio:
        return keys
    precisions = ("float32", "int8")
    worst = lambda name, metric: max(ratio[name][p][metric] for p in precisions)
    keys.update({
        "stream_over_movinet_a0_latency": worst("benchmark", "step_cpu_ms"),
        "stream_over_movinet_a0_latency_wall": worst("benchmark", "step_ms"),
        "stream_over_movinet_a0_latency_equal_macs": worst("equal_macs_width", "step_cpu_ms"),
        "stream_over_movinet_a0_latency_equal_macs_wall": worst("equal_macs_width", "step_ms"),
        "stream_over_movinet_a0_latency_equal_macs_depth": worst("equal_macs_depth", "step_cpu_ms"),
        "gmacs_per_s_ours_over_movinet": min(ratio["benchmark"][p]["gmacs_per_s"] for p in precisions),
        "gmacs_per_s_ours_equal_macs_over_movinet": min(ratio["equal_macs_width"][p]["gmacs_per_s"]
                                                        for p in precisions),
    })
    for p in precisions:
        keys[f"stream_over_movinet_a0_latency_equal_macs_{p}"] = ratio["equal_macs_width"][p]["step_cpu_ms"]
        keys[f"stream_over_movinet_a0_bare_invoke_equal_macs_{p}"] = ratio["equal_macs_width"][p]["invoke_cpu_ms"]
        for who, name in (("ours", "benchmark"), ("ours_equal_macs", "equal_macs_width"),
                          ("movinet", "movinet_a0_stream")):
            keys[f"gmacs_per_s_{who}_{p}"] = timed[name][p]["gmacs_per_s"]
    return keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and fewer precisions (~17 min on 2 cores)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--footage", type=Path, action="append", default=None,
                    help="real video, repeatable (default: the two python3-imageio ships); the first one "
                         "also feeds BatchNorm statistics and calibration")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 20 quick, 30 full)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="training seeds of the int8 figures (default 0 1 2; the issue asks for at least 3)")
    ap.add_argument("--qat-epochs", type=int, default=None, help="QAT fine-tune epochs (default: train_qat's)")
    ap.add_argument("--no-anchor", action="store_true", help="do not build/run MoViNet-A0-Stream")
    ap.add_argument("--anchor-timeout", type=int, default=900)
    ap.add_argument("--only", choices=PARTS, action="append",
                    help="run only these parts (repeatable)")
    args = ap.parse_args()
    footage = args.footage or list(FOOTAGE_CLIPS)
    missing = [str(p) for p in footage if not p.is_file()]
    if missing:
        raise SystemExit(f"no real footage at {', '.join(missing)}: apt-get install python3-imageio, "
                         "or pass --footage VIDEO")
    parts = set(args.only or PARTS)
    out = args.out or Path(tempfile.mkdtemp(prefix="tfkit-zoo-"))
    t_start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)
    result: dict = {"quick": args.quick, "footage": [str(p) for p in footage], "seconds": {}}

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        result["seconds"][name] = round(time.perf_counter() - t0, 1)
        if args.json:  # partial results survive a later failure
            emit(result, args.json)
        return value

    from tfkit.pipeline import DEMO_MODEL

    streaming_spec = replace(DEMO_MODEL, num_classes=7, frames=8, size=32, causal=True)
    if "streaming" in parts or "qat" in parts:
        # Issue 27: the int8 figures over training seeds, worst case in the headline keys.
        epochs = args.epochs or (20 if args.quick else 30)  # width 0.5 needs ~20 (12 epochs: val 0.45)
        rows, result["streaming_seeds"], result["qat_seeds"] = [], {}, {}
        for seed in args.seeds:
            folder = out / f"streaming_seed{seed}"
            if "streaming" in parts or not (folder / "clip_model.keras").is_file():
                s = timed(f"streaming_seed{seed}", functools.partial(
                    measure_streaming, folder, epochs=epochs, footage=footage, min_footage_frames=300, threads=1,
                    seed=seed))
                s["delegation"] = stream_delegation(folder / "stream_int8.tflite")
                result["streaming_seeds"][str(seed)] = s
            s = result["streaming_seeds"].get(str(seed))
            qat = None
            if "qat" in parts:
                qat = timed(f"qat_seed{seed}", functools.partial(qat_default_model, folder, args.qat_epochs, footage, log))
                result["qat_seeds"][str(seed)] = qat
            if s:
                rows.append(per_seed(s, qat, s["delegation"]))
                log(f"[int8] seed {seed}: {rows[-1]}")
        result.update(seed_keys(rows))
        first = next(iter(result["streaming_seeds"].values()), None)
        if first:
            result["stream_int8_frames"] = first["footage_distinct_frames"]
            result["stream_int8_footage_clips"] = first["footage_frames_per_clip"]
    if "qat" in parts and not args.quick:
        result["qat"] = timed("qat", lambda: qat_part(log))
    if "repair" in parts:  # issue 27: --repair auto on an outlier model; granularity's size reduction
        repair = timed("repair", lambda: measure_repair(out / "repair", seed=args.seeds[0], full=not args.quick,
                                                        log=log))
        result.update({k: repair[k] for k in REPAIR_KEYS})
        result["repair"] = repair
    if "sweep" in parts:
        sweep = timed("sweep", lambda: sweep_part(args.quick, footage[0], log))
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
        anchor = timed("anchor", lambda: anchor_part(streaming_spec, footage[0], out, args.quick, args.no_anchor,
                                                     args.anchor_timeout, log))
        result.update(anchor_keys(anchor))
        result["anchor"] = anchor
    result["goals"] = {"int8_seeds": ">= 3", "qat_minus_ptq_int8_accuracy": ">= 0",
                       "qat_stream_int8_top1_agreement": ">= 0.98", "qat_stream_int8_accuracy_drop": "<= 0.01",
                       "stream_int8_xnnpack_ops_outside": "== 0", "stream_int8_edgetpu_verdict": "full",
                       "stream_clip_max_abs_diff": "<= 1e-4", "stream_int8_top1_agreement": ">= 0.98",
                       "stream_int8_frames": ">= 300", "clip_int8_accuracy_drop": "<= 0.01",
                       "stream_int8_accuracy_drop": "<= 0.01", "stream_step_over_clip_latency": "<= 0.2",
                       "interp/sr int8 PSNR": ">= baseline + 1 dB", "min_int8_size_reduction": ">= 3.9",
                       "max_int8_xnnpack_partitions": "<= 2", "max_int8_over_float_latency": "<= 1.0",
                       "stream_over_movinet_a0_latency": "<= 0.5",  # equal-MACs keys: a comparison, no goal
                       **repair_goals(full=not args.quick)}
    result["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
