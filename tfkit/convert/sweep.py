"""Every zoo model in every precision and form: convert, then record what a deployer needs to know
before the model reaches a phone (builtin-only op list, XNNPACK partitions, float islands, the GPU
analyzer's verdict for float16, size, and p50 latency on a device: this host unless `device` names
a board, timed by tfkit.bench.timing in the device's runner). A precision the converter or the
runtime refuses becomes a row with the reason, not a crash.

Example:
    >>> rows = sweep_zoo(VideoModelSpec(frames=4, size=32, causal=True), clips)  # doctest: +SKIP
    >>> [r for r in rows if not r["builtin_only"]]
    []
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from tfkit.convert.variants import VARIANTS
from tfkit.errors import TfkitError
from tfkit.models.spec import TEMPORAL_MODULES, VideoModelSpec

FORMS = ("clip", "stream")


def zoo_specs(base: VideoModelSpec, families: Iterable[str] | None = None,
              temporals: Iterable[str] = TEMPORAL_MODULES) -> list[VideoModelSpec]:
    """`base` in every registered family x temporal module (causal, so each also streams)."""
    from tfkit.models import model_names

    return [replace(base, family=f, temporal=t, causal=True)
            for f in (families or model_names()) for t in temporals]


def calibrate_batchnorm(model, clips: np.ndarray):
    """Set every BatchNormalization's moving statistics from `clips` (one batch, in place), so an
    untrained model has trained-like activation ranges. Without this a fresh model's activations
    shrink layer by layer, int8 scales get tiny, and XNNPACK refuses ops whose input/output scale
    ratio leaves its range: partition counts of untrained models would then say nothing."""
    bns = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(np.asarray(clips, np.float32), training=True)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    return model


def is_builtin(op_name: str) -> bool:
    """False for Flex (select TF) ops and custom ops, which stock LiteRT runtimes lack."""
    return not (op_name == "CUSTOM" or op_name.startswith(("Flex", "Custom")))


def size_breakdown(flatbuffer: bytes, *, gzipped: bool = False) -> dict:
    """Where a flatbuffer's bytes go: weights (float or int8 tensors with data), int32 biases,
    quantization parameters (per-channel int8 stores a float32 scale and an int64 zero point per
    output channel: 12 bytes), and the rest (graph structure, names, metadata). Explains why a
    small or depthwise-heavy int8 model is well under 4x smaller than its float32 form.
    `gzipped`: each part's gzip size instead (how a sparse model's zeros pay off, and what does not
    compress: float32 scales)."""
    import gzip

    from ai_edge_litert import schema_py_generated as schema

    from tfkit.convert.flatbuffer import read_model

    model = read_model(flatbuffer)
    parts = {"weights": bytearray(), "int32": bytearray(), "scales": bytearray(), "zero_points": bytearray()}
    seen = set()
    for graph in model.subgraphs:
        for t in graph.tensors:
            data = model.buffers[t.buffer].data
            if data is not None and len(data) and t.buffer not in seen:
                seen.add(t.buffer)
                parts["int32" if t.type == schema.TensorType.INT32 else "weights"] += bytes(bytearray(data))
            qp = t.quantization
            if qp is not None and qp.scale is not None:
                parts["scales"] += np.asarray(qp.scale, np.float32).tobytes()
                parts["zero_points"] += np.asarray(qp.zeroPoint if qp.zeroPoint is not None else [], np.int64).tobytes()
    size = (lambda b: len(gzip.compress(bytes(b), 9))) if gzipped else len
    out = {"weights": size(parts["weights"]), "int32": size(parts["int32"]),  # int32: biases and shape constants
           "quant_params": size(parts["scales"] + parts["zero_points"]) if gzipped else
           len(parts["scales"]) + len(parts["zero_points"])}
    total = size(flatbuffer)
    out["structure"] = max(total - sum(out.values()), 0) if gzipped else total - sum(out.values())
    return out


def describe_flatbuffer(flatbuffer: bytes, *, precision: str, threads: int = 2, latency_runs: int = 50,
                        device=None) -> dict:
    """Size, op list, builtin-only, XNNPACK partitions, float activations, GPU verdict (float16)
    and p50 invoke latency on `device` (a Device or an address; default: this host) of any
    single-signature flatbuffer (clip or streaming)."""
    from tfkit.bench.devices.base import BenchConfig
    from tfkit.bench.timing import time_tflite
    from tfkit.convert.parity import TFLiteModel
    from tfkit.delegates.gpu import analyze_gpu

    tfl = TFLiteModel(flatbuffer, threads=threads)
    ops = tfl.op_counts()
    row = {"size_bytes": len(flatbuffer), "size_breakdown": size_breakdown(flatbuffer), "ops": ops,
           "builtin_only": all(is_builtin(o) for o in ops), "xnnpack_partitions": tfl.xnnpack_partitions(), "float_activation_tensors": tfl.float_activation_count()}
    if precision == "float16":
        row["gpu_analyzer"] = analyze_gpu(flatbuffer).to_dict()
    row["latency_p50_ms"] = time_tflite(flatbuffer, device, BenchConfig(threads=threads, warmup=5, runs=latency_runs),
                                        precision=precision)
    row["threads"] = threads
    return row


def convert_model(spec: VideoModelSpec, clips: np.ndarray, *, precisions: Iterable[str] | None = None,
                  forms: Iterable[str] = FORMS, model=None) -> list[tuple[dict, bytes | None]]:
    """Convert `spec` (or the given trained `model` built from it; else an untrained one with BN
    statistics from `clips`) in every (form, precision): [(row, flatbuffer)], where a conversion the
    converter refuses has flatbuffer None and the reason in row["error"]. `clips` (N, T, H, W, 3)
    float, normalized as the model expects, calibrate the int8 forms."""
    from tfkit.convert.tflite import convert_keras
    from tfkit.models import build, to_streaming
    from tfkit.models.streaming import stream_calibration

    model = model if model is not None else calibrate_batchnorm(build(spec), clips)
    stream = to_streaming(model, spec) if "stream" in forms else None
    out = []
    for form in forms:
        source = model if form == "clip" else stream
        for precision in precisions or VARIANTS.names():
            row = {"model": spec.name, "family": spec.family, "temporal": spec.temporal, "form": form,
                   "precision": precision, "params": int(model.count_params()), "error": None}
            calibration = ((c[None] for c in clips) if form == "clip"
                           else stream_calibration(stream, clips, every=2))
            t0 = time.perf_counter()
            flatbuffer = None
            try:
                flatbuffer = convert_keras(source, precision, calibration=calibration)
            except TfkitError as e:  # refused by the converter: say which and why
                row["error"] = str(e)
            row["convert_seconds"] = round(time.perf_counter() - t0, 2)
            out.append((row, flatbuffer))
    return out


def describe_row(row: dict, flatbuffer: bytes | None, *, threads: int = 2, latency_runs: int = 50, device=None,
                 log: Callable[[str], None] = lambda _: None) -> dict:
    """`row` completed with `describe_flatbuffer`; a model the runtime refuses gets the reason."""
    if flatbuffer is not None:
        try:
            row.update(describe_flatbuffer(flatbuffer, precision=row["precision"], threads=threads,
                                           latency_runs=latency_runs, device=device))
        except TfkitError as e:
            row["error"] = str(e)
    log(f"[sweep] {row['model']} {row['form']} {row['precision']}: "
        + (row["error"] or f"{row['size_bytes']} B, {row['xnnpack_partitions']} XNNPACK partition(s), "
           f"p50 {row['latency_p50_ms']:.2f} ms"))
    return row


def sweep_model(spec: VideoModelSpec, clips: np.ndarray, *, precisions: Iterable[str] | None = None,
                forms: Iterable[str] = FORMS, model=None, threads: int = 2, latency_runs: int = 50, device=None,
                log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """One described row per (form, precision) of one model (see `convert_model`), timed on
    `device` (a Device or an address; default: this host)."""
    from tfkit.bench.timing import timing_device

    device = timing_device(device)  # opened before any conversion
    return [describe_row(row, fb, threads=threads, latency_runs=latency_runs, device=device, log=log)
            for row, fb in convert_model(spec, clips, precisions=precisions, forms=forms, model=model)]


def _convert_in_worker(spec: dict, clips: np.ndarray, precisions, forms) -> list[tuple[dict, bytes | None]]:
    return convert_model(VideoModelSpec.from_dict(spec), clips, precisions=precisions, forms=forms)


def sweep_zoo(specs: Iterable[VideoModelSpec], clips: np.ndarray, *, precisions: Iterable[str] | None = None,
              forms: Iterable[str] = FORMS, workers: int = 2, threads: int = 1, latency_runs: int = 50,
              device=None, log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """`sweep_model` over many specs: conversions run in `workers` processes (the TFLite converter
    is mostly single-threaded), then every flatbuffer is described and timed on `device` (default:
    this host), one at a time, so no latency is measured while a conversion shares the CPU."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tfkit.bench.timing import timing_device

    device = timing_device(device)  # opened before any conversion
    specs, precisions, forms = list(specs), list(precisions or VARIANTS.names()), list(forms)
    if workers <= 1:
        converted = [convert_model(s, clips, precisions=precisions, forms=forms) for s in specs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_convert_in_worker, s.to_dict(), clips, precisions, forms) for s in specs]
            converted = []
            for spec, future in zip(specs, futures):
                converted.append(future.result())
                log(f"[sweep] {spec.name}: converted")
    return [describe_row(row, fb, threads=threads, latency_runs=latency_runs, device=device, log=log)
            for pairs in converted for row, fb in pairs]


def summarize(rows: list[dict]) -> dict:
    """The zoo-wide figures: smallest float32/int8 size ratio, most int8 XNNPACK partitions, worst
    int8/float32 latency ratio, every row builtin-only, every float16 GPU-analyzer clean."""
    by = {(r["model"], r["form"], r["precision"]): r for r in rows if not r["error"]}
    pairs = [(by[k], by[(k[0], k[1], "int8")]) for k in by if k[2] == "float32" and (k[0], k[1], "int8") in by]
    fp16 = [r for r in by.values() if r["precision"] == "float16"]
    return {
        "min_int8_size_reduction": min((f["size_bytes"] / q["size_bytes"] for f, q in pairs), default=None),
        "max_int8_xnnpack_partitions": max((q["xnnpack_partitions"] for _, q in pairs), default=None),
        "max_int8_over_float_latency": max((q["latency_p50_ms"] / f["latency_p50_ms"] for f, q in pairs),
                                           default=None),
        "all_builtin_only": all(r["builtin_only"] for r in by.values()),
        "all_float16_gpu_compatible": all(r["gpu_analyzer"]["compatible"] for r in fp16) if fp16 else None,
        "errors": [f"{r['model']} {r['form']} {r['precision']}: {r['error']}" for r in rows if r["error"]],
    }
