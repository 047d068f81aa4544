"""MoViNet-A0-Stream anchor: build, convert to LiteRT (float32 + int8 PTQ), measure per-frame latency.

The anchor our streaming model is compared against: TF Model Garden's MoViNet-A0-Stream (causal,
(2+1)D convolutions, 2plus3d squeeze-excitation, hard-swish / hard-sigmoid, external states, 600
classes, random weights with a fixed seed), exported with
`official.projects.movinet.tools.export_saved_model` exactly as its "Export for TF Lite" example
does (batch 1, one frame per step, static size), converted with `TFLiteConverter.from_saved_model`.

int8 is post-training quantization with float I/O; its representative data are random frames paired
with the states reached by streaming random frames through the float32 LiteRT model (zero states
alone calibrate the state tensors badly).

Latency: `tfkit.bench.timing.time_stream` (the helper that times our models too): a fresh process
per model, `num_threads=--threads`, default XNNPACK delegate, seeded real-looking frames in [0, 1].
Per frame = median over --frames steps that set the frame and states, invoke and read every output,
feeding the states back (after warm-up); "bare invoke" = median of `interpreter.invoke()` alone.
MACs and parameters are counted off the float32 .tflite (tfkit.optimize.cost.tflite_macs).

The .tflite files are cached under ~/.cache/tfkit/movinet-anchor/tflite/ (or --cache-dir), keyed by
size, so a rerun only measures (a few seconds) and does not need tf-models-official at all.
Building needs tf-models-official and its import-time dependencies, kept out of the project venv:

    bash benchmarks/setup_movinet_anchor.sh
    PYTHONPATH=~/.cache/tfkit/movinet-anchor/site \\
        .venv/bin/python benchmarks/movinet_anchor.py --json out/movinet.json [--size 172] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Model Garden builds tf_keras models
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _emit import emit

from tfkit.bench.timing import TimingConfig, time_stream
from tfkit.optimize.cost import tflite_macs, tflite_params

PREFIX = "movinet_anchor:"
CACHE_ROOT = Path(os.environ.get("TFKIT_MOVINET_CACHE", Path.home() / ".cache" / "tfkit" / "movinet-anchor"))
SITE_DIR = CACHE_ROOT / "site"
SETUP_HINT = (
    "run `bash benchmarks/setup_movinet_anchor.sh` (pip install --no-deps --target "
    f"{SITE_DIR} tf-models-official==2.20.0 ...) and rerun with PYTHONPATH={SITE_DIR}"
)
# The "Export for TF Lite" configuration of official/projects/movinet/tools/export_saved_model.py.
CONFIG = {
    "model_id": "a0",
    "causal": True,
    "conv_type": "2plus1d",
    "se_type": "2plus3d",
    "activation": "hard_swish",
    "gating_activation": "hard_sigmoid",
    "classifier_activation": "swish",
    "use_positional_encoding": False,
    "num_classes": 600,
}
SEED = 0
INPUT_RANGE = (0.0, 1.0)  # MoViNet's frames are RGB in [0, 1]


def fail(msg: str) -> None:
    """One line on stderr, exit status 2 (the helper in _movinet.py reports this line)."""
    print(f"{PREFIX} error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def log(msg: str) -> None:
    print(f"{PREFIX} {msg}", file=sys.stderr, flush=True)


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- build + convert


def import_export_tool():
    import importlib.util

    if importlib.util.find_spec("official") is None:
        fail(f"module `official` (tf-models-official) is not importable; {SETUP_HINT}")
    try:
        from official.projects.movinet.tools import export_saved_model
    except ModuleNotFoundError as e:
        fail(f"importing official.projects.movinet failed: no module named {e.name!r}; {SETUP_HINT}")
    except Exception as e:  # noqa: BLE001
        fail(f"importing official.projects.movinet failed: {type(e).__name__}: {e}")
    return export_saved_model


def export_saved_model(size: int, path: Path) -> None:
    tool = import_export_tool()
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)  # random weights, but the same ones every build
    tool.build_and_export_saved_model(
        export_path=str(path),
        input_shape=(1, 1, size, size, 3),
        bundle_input_init_states_fn=False,
        checkpoint_path="",
        **CONFIG,
    )


def random_frames(rng: np.random.Generator, n: int, size: int) -> list[np.ndarray]:
    """Temporally correlated random frames in [0, 1] (MoViNet's input range): a random scene that
    drifts, plus per-frame noise."""
    scene = rng.random((1, 1, size, size, 3), dtype=np.float32)
    frames = []
    for _ in range(n):
        scene = np.clip(scene + rng.normal(0, 0.05, scene.shape).astype(np.float32), 0, 1)
        frames.append(np.clip(scene + rng.normal(0, 0.02, scene.shape).astype(np.float32), 0, 1))
    return frames


def calibration_samples(float_model: bytes, size: int, clips: int = 4, steps: int = 8) -> list[dict]:
    """(frame, states) pairs met while streaming random clips through the float32 LiteRT model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=float_model, num_threads=2)
    runner = interp.get_signature_runner()
    state_names = [n for n in runner.get_input_details() if n != "image"]
    rng = np.random.default_rng(SEED)
    samples = []
    for _ in range(clips):
        states = zero_states(runner, state_names)
        for frame in random_frames(rng, steps, size):
            samples.append({"image": frame, **states})
            out = runner(image=frame, **states)
            states = {n: out[n] for n in state_names}
    return samples


def convert(saved_model: Path, size: int, int8: bool) -> dict[str, bytes]:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    models = {"float32": conv.convert()}
    if int8:
        samples = calibration_samples(models["float32"], size)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: iter(samples)
        models["int8"] = conv.convert()
    return models


def cache_paths(cache_dir: Path, size: int) -> dict[str, Path]:
    stem = f"movinet_a0_stream_{size}"
    return {
        "float32": cache_dir / f"{stem}_float32.tflite",
        "int8": cache_dir / f"{stem}_int8.tflite",
        "meta": cache_dir / f"{stem}.json",
    }


def load_or_build(cache_dir: Path, size: int, int8: bool, rebuild: bool) -> tuple[dict[str, bytes], dict]:
    paths = cache_paths(cache_dir, size)
    wanted = ["float32", "int8"] if int8 else ["float32"]
    meta = json.loads(paths["meta"].read_text()) if paths["meta"].is_file() else {}
    if not rebuild and meta.get("config") == CONFIG and all(paths[k].is_file() for k in wanted):
        log(f"using cached {', '.join(str(paths[k]) for k in wanted)}")
        return {k: paths[k].read_bytes() for k in wanted}, {**meta, "cached": True}

    log(f"building MoViNet-A0-Stream {size}x{size} (needs tf-models-official; a few minutes)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="movinet_a0_stream_") as tmp:
        sm = Path(tmp) / "saved_model"
        export_saved_model(size, sm)
        t_export = time.perf_counter() - t0
        log(f"exported SavedModel in {t_export:.0f} s; converting")
        models = convert(sm, size, int8)
    t_total = time.perf_counter() - t0
    cache_dir.mkdir(parents=True, exist_ok=True)
    for k, blob in models.items():
        tmp_path = paths[k].with_suffix(".tmp")
        tmp_path.write_bytes(blob)
        tmp_path.replace(paths[k])
    meta = {
        "config": CONFIG,
        "seed": SEED,
        "size": size,
        "export_s": round(t_export, 1),
        "build_s": round(t_total, 1),
        "built_with": {
            "tensorflow": version("tensorflow"),
            "tf_keras": version("tf-keras"),
            "tf_models_official": version("tf-models-official"),
        },
    }
    paths["meta"].write_text(json.dumps(meta, indent=2) + "\n")
    log(f"built + converted in {t_total:.0f} s; cached in {cache_dir}")
    return models, {**meta, "cached": False}


# ---------------------------------------------------------------- measure


def zero_states(runner, state_names: list[str]) -> dict[str, np.ndarray]:
    det = runner.get_input_details()
    return {n: np.zeros(det[n]["shape"], dtype=det[n]["dtype"]) for n in state_names}


def count_ops(model: bytes) -> tuple[int, int]:
    """(ops in the plain graph, DELEGATE ops = XNNPACK partitions with the default delegate)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = Interpreter(
        model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    plain.allocate_tensors()
    n_ops = len(plain._get_ops_details())
    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    partitions = sum(1 for op in interp._get_ops_details() if op["op_name"] == "DELEGATE")
    return n_ops, partitions


def timing_config(args) -> TimingConfig:
    return TimingConfig(threads=args.threads, frames=args.frames, warmup=args.warmup, input_range=INPUT_RANGE,
                        frame_input="image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    ap.add_argument("--size", type=int, default=172)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=50, help="timed steps (>= 50 recommended)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--cache-dir", type=Path, default=CACHE_ROOT / "tflite")
    ap.add_argument("--rebuild", action="store_true", help="ignore the cached .tflite files")
    ap.add_argument("--measure", action=argparse.BooleanOptionalAction, default=True,
                    help="time both models (--no-measure: only build/cache them and count MACs, ops)")
    args = ap.parse_args()
    if version("ai-edge-litert") is None:
        fail("ai_edge_litert is not installed in this interpreter; use the project venv (.venv/bin/python)")

    t0 = time.perf_counter()
    models, meta = load_or_build(args.cache_dir, args.size, args.int8, args.rebuild)
    paths = cache_paths(args.cache_dir, args.size)
    res: dict = {"anchor": "MoViNet-A0-Stream (TF Model Garden), random weights", "config": CONFIG}
    sizes, parts, ops, detail = {}, {}, {}, {}
    for kind, blob in models.items():
        sizes[kind] = len(blob)
        ops[kind], parts[kind] = count_ops(blob)
        if args.measure:
            detail[kind] = time_stream(paths[kind], timing_config(args)).to_dict()
            log(f"{kind}: {detail[kind]['step_ms']} ms/frame (cpu {detail[kind]['step_cpu_ms']}, "
                f"bare invoke {detail[kind]['invoke_ms']} ms), {parts[kind]} XNNPACK partitions")
    timed = lambda kind, key: detail[kind][key] if kind in detail else None
    res.update(
        tflite={k: str(paths[k]) for k in models},
        input_range=list(INPUT_RANGE),
        macs_per_frame=tflite_macs(models["float32"]),  # the same count in every precision
        params=tflite_params(models["float32"]),
        float32_ms_per_frame=timed("float32", "step_ms"),
        int8_ms_per_frame=timed("int8", "step_ms"),
        float32_cpu_ms_per_frame=timed("float32", "step_cpu_ms"),
        int8_cpu_ms_per_frame=timed("int8", "step_cpu_ms"),
        float32_bare_invoke_ms=timed("float32", "invoke_ms"),
        int8_bare_invoke_ms=timed("int8", "invoke_ms"),
        size_bytes=sizes,
        xnnpack_partitions=parts,
        ops=ops["float32"],
        ops_by_model=ops,
        states=timed("float32", "states"),
        state_values=timed("float32", "state_values"),
        size=args.size,
        threads=args.threads,
        frames=args.frames,
        warmup=args.warmup,
        timing="tfkit.bench.timing (fresh process per model; step = set frame + states, invoke, read outputs; "
               "bare = invoke only)",
        detail=detail,
        cached=meta.get("cached", False),
        build_s=meta.get("build_s"),
        wall_s=round(time.perf_counter() - t0, 1),
        loadavg_1m=round(os.getloadavg()[0], 2),
        versions={
            "python": platform.python_version(),
            "ai_edge_litert": version("ai-edge-litert"),
            "numpy": version("numpy"),
            "built_with": meta.get("built_with"),
        },
    )
    emit(res, args.json)


if __name__ == "__main__":
    main()
