#!/usr/bin/env python3
"""tfkit's on-device benchmark runner: time (and optionally score) one .tflite model.

This file is copied to the device and run there (this host, a Linux board over ssh, Android).
It needs only the Python stdlib (>= 3.8), numpy and one interpreter module:
`ai_edge_litert.interpreter` or `tflite_runtime.interpreter` (old boards, numpy < 2).
It never imports tfkit.

Example:
    python runner.py --model m.tflite --threads 2 --runs 50 --eval clips.npz --json-out r.json
    python runner.py --model stream_int8.tflite --stream --fps 15 --delegate none --cpu-affinity 2,3

Its board_*.py siblings (copied with it) hold the /proc + /sys readers (hygiene, energy), the
delegates and the stream mode. Energy per inference comes only from a real counter read right
before and right after the timed loop, labelled with its source; otherwise null with the reason.

Contract: the last line on stdout is one JSON object. On success it holds the measurements
(`"schema": "tfkit.runner/2"`); on failure the process exits non-zero and the object is
`{"error": "<the runtime's own words>", "kind": "<load|unsupported_op|allocate|invoke|eval_data|...>"}`.
Human logs go to stderr. Latency percentiles are nearest-rank over the steady-state invoke
times (each one a real observation, no interpolation); times come from time.perf_counter.
"""
import argparse
import json
import math
import os
import platform
import sys
import time
import traceback

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # loaded by path, not run as a script
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import board_delegates  # the siblings copied with this file, found through the line above
import board_eval
import board_stream
import board_sysinfo
from board_eval import NORMALIZATIONS, dequantize, load_clips, to_model_input
from board_stream import read_tfkit_metadata

try:
    import numpy as np
except ImportError as _numpy_error:  # reported as JSON by main(), not as a traceback
    np = None
    NUMPY_IMPORT_ERROR = str(_numpy_error)

SCHEMA = "tfkit.runner/2"
RUNTIME_CHOICES = ("auto", "litert", "tflite_runtime")
RUNTIME_MODULES = (("litert", "ai_edge_litert"), ("tflite_runtime", "tflite_runtime"))  # (choice, module)
# Words interpreters use when a model holds an op (or op version) they do not know.
UNSUPPORTED_OP_MARKERS = ("Didn't find op for builtin opcode", "Encountered unresolved custom op",
                          "Op builtin_code out of range", "is not supported",
                          "only supports")  # tflite-runtime 2.14: "Div only supports FLOAT32, INT32 and quantized UINT8"


class RunnerError(Exception):
    """A failure to report as {"error", "kind"}; `kind` lets the host pick a hint."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit 2 without JSON
        raise RunnerError("usage", f"{message}; run runner.py --help for the options")


def log(message):
    sys.stderr.write("[tfkit-runner] " + message + "\n")
    sys.stderr.flush()


def _int_at_least(minimum):
    def parse(text):
        if int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return int(text)

    return parse


def build_parser():
    p = _Parser(prog="runner.py", description="Time and optionally evaluate one .tflite model.")
    p.add_argument("--model", required=True, help="path of the .tflite file")
    p.add_argument("--threads", type=_int_at_least(1), default=2)
    p.add_argument("--warmup", type=_int_at_least(0), default=5)
    p.add_argument("--runs", type=_int_at_least(1), default=50)
    p.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                   help="auto: ai_edge_litert, else tflite_runtime")
    p.add_argument("--eval", dest="eval_npz", default=None,
                   help=".npz with x: uint8 clips (N,T,H,W,3) or (N,H,W,3) and y: int labels (N,)")
    p.add_argument("--eval-limit", type=_int_at_least(1), default=None, help="score only the first K clips")
    p.add_argument("--normalization", choices=sorted(NORMALIZATIONS), default="symmetric")
    p.add_argument("--predictions-out", default=None, help="save eval logits/predictions/labels (.npz)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random timing inputs")
    p.add_argument("--json-out", default=None, help="also write the JSON result here")
    p.add_argument("--delegate", choices=board_delegates.DELEGATE_CHOICES, default="default",
                   help="default: the runtime's own CPU path; none: no delegate at all; others load one")
    p.add_argument("--delegate-library", default=None, help="external delegate .so (edgetpu: libedgetpu.so.1)")
    p.add_argument("--cpu-affinity", type=_cpu_list, default=None, help="pin to these CPUs, e.g. 0,2,3")
    p.add_argument("--stream", action="store_true", help="stream mode: frame by frame, states fed back")
    p.add_argument("--fps", type=_positive_float, default=None, help="with --stream: count frames over 1000/fps ms")
    p.add_argument("--sysfs-root", default="/", help="read /proc and /sys under this folder (tests)")
    return p


def _cpu_list(text):
    try:
        cpus = sorted({int(c) for c in text.split(",") if c.strip()})
    except ValueError:
        cpus = []
    if not cpus or cpus[0] < 0:
        raise argparse.ArgumentTypeError(f"must be CPU numbers like 0,2,3, got {text!r}")
    return cpus


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


# --- runtime -------------------------------------------------------------------------------------


def load_runtime(choice):
    """Return (Interpreter class, runtime name, version, fallback note or None)."""
    wanted = [m for m in RUNTIME_MODULES if choice in ("auto", m[0])]
    failures = []
    for _, module_name in wanted:
        try:
            package = __import__(module_name + ".interpreter", fromlist=["Interpreter"])
            interpreter_class = package.Interpreter
        except Exception as e:  # noqa: BLE001 - a numpy ABI mismatch raises AttributeError, not ImportError
            failures.append(f"{module_name}: {type(e).__name__}: {e}")
            continue
        version = str(getattr(sys.modules[module_name], "__version__", "unknown"))
        note = "; ".join(failures) if failures else None
        if note:
            log(f"fell back to {module_name} because {note}")
        return interpreter_class, module_name, version, note
    tried = "; ".join(failures)
    raise RunnerError("runtime_missing", f"no TFLite interpreter could be imported ({tried}). Install "
                      "ai-edge-litert (pip install ai-edge-litert), or on old boards tflite-runtime with numpy<2.")


def _runtime_kind(message, default):
    return "unsupported_op" if any(m in message for m in UNSUPPORTED_OP_MARKERS) else default


# --- measuring -----------------------------------------------------------------------------------


def peak_rss_mb():
    """Peak resident set size of this process in MiB, or None where it cannot be read.

    /proc/self/status VmHWM first: it belongs to this program's own address space, whereas Linux
    carries ru_maxrss over from the parent through fork+exec (a runner started by a 1 GB host
    process would report 1 GB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux/Android, bytes on macOS.
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def nearest_rank(sorted_values, percent):
    """Nearest-rank percentile: the smallest value with at least `percent`% of values <= it."""
    rank = -(-percent * len(sorted_values) // 100)  # ceil with integer arithmetic
    return sorted_values[max(1, rank) - 1]


def latency_stats(times_ms):
    ordered = sorted(times_ms)
    mean = sum(ordered) / len(ordered)
    std = math.sqrt(sum((t - mean) ** 2 for t in ordered) / len(ordered))
    return {"p50": nearest_rank(ordered, 50), "p90": nearest_rank(ordered, 90), "p99": nearest_rank(ordered, 99),
            "mean": mean, "min": ordered[0], "max": ordered[-1], "std": std, "runs": len(ordered),
            "method": "nearest-rank",
            # every time in run order, so the host merges rounds exactly (and sees drift within a round)
            "times_ms": list(times_ms)}


def tensor_info(detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {"name": str(detail.get("name", "")), "shape": [int(s) for s in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name, "quantization": [float(scale), int(zero_point)]}


def random_input(detail, rng):
    shape = [int(s) for s in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        return rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(dtype)
    if dtype.kind in "iu":
        # Wide ints are usually indices (token ids, positions): keep them small and valid.
        return rng.integers(0, 16, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(size=shape) < 0.5
    raise RunnerError("unsupported_input",
                      f"cannot make timing data for input {detail.get('name')!r} of dtype {dtype.name}")


def _describe(error):
    """The exception's own words, plus its cause (pybind wrappers hide the real error there)."""
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause) not in text:
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text


def _load_hint(runtime, model_path):
    """Extra words for a model the runtime would not load: wrong file, or wrong numpy for the wheel."""
    hints = []
    if runtime == "tflite_runtime" and int(np.__version__.split(".")[0]) >= 2:
        hints.append("tflite_runtime wheels (<= 2.14) are built for numpy 1.x but this device has numpy "
                     f"{np.__version__}: pip install 'numpy<2'")
    with open(model_path, "rb") as f:
        identifier = f.read(8)[4:8]
    if identifier != b"TFL3":
        hints.append(f"the file is not a TFLite flatbuffer (identifier {identifier!r}, expected b'TFL3')")
    return (" [" + "; ".join(hints) + "]") if hints else ""


def _runtime_call(kind, action, hint=lambda: ""):
    """Run one interpreter call; turn whatever it raises into a RunnerError in its own words."""
    try:
        return action()
    except Exception as e:  # noqa: BLE001 - runtimes raise ValueError/RuntimeError/SystemError
        message = _describe(e)
        raise RunnerError(_runtime_kind(message, kind), message + hint())


def create_interpreter(interpreter_class, runtime, model_path, threads, options):
    if not os.path.isfile(model_path):
        raise RunnerError("model_not_found", f"model file not found on the device: {model_path}")
    start = time.perf_counter()
    interpreter = _runtime_call("load", lambda: interpreter_class(model_path=model_path, num_threads=threads,
                                                                  **options),
                                lambda: _load_hint(runtime, model_path))
    _runtime_call("allocate", interpreter.allocate_tensors)
    return interpreter, (time.perf_counter() - start) * 1000.0


def timed_invoke(interpreter):
    start = time.perf_counter()
    _runtime_call("invoke", interpreter.invoke)
    return (time.perf_counter() - start) * 1000.0


def check_static_shape(detail):
    """Refuse an input whose non-batch dimensions are dynamic (-1 in its signature): the interpreter
    would silently size them 1, and a timing on such a degenerate input would mislead."""
    signature = [int(s) for s in detail.get("shape_signature", detail["shape"])]
    dynamic = [axis for axis, size in enumerate(signature) if size < 0 and axis > 0]
    if dynamic:
        raise RunnerError("dynamic_input", f"input {detail.get('name')!r} has dynamic dimensions at axes {dynamic} "
                          f"(signature {signature}); the runner cannot guess their sizes.")


def measure(interpreter, warmup, runs, seed, energy_source):
    """(first inference ms, latency stats, the energy source's samples right around the timed loop)."""
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        check_static_shape(detail)  # a dynamic batch (axis 0) is timed at batch 1, the shape it has
        interpreter.set_tensor(detail["index"], random_input(detail, rng))
    first_ms = timed_invoke(interpreter)
    for _ in range(warmup):
        timed_invoke(interpreter)
    samples = [board_sysinfo.sample(energy_source)]
    times = [timed_invoke(interpreter) for _ in range(runs)]
    samples.append(board_sysinfo.sample(energy_source))
    return first_ms, latency_stats(times), samples


# --- main ----------------------------------------------------------------------------------------


def set_affinity(cpus):
    if cpus is None:
        return None
    try:
        os.sched_setaffinity(0, cpus)
    except (OSError, AttributeError) as e:  # AttributeError: no sched_setaffinity (macOS)
        raise RunnerError("cpu_affinity", f"cannot pin to CPUs {cpus} ({e}); this device has CPUs 0-"
                          f"{(os.cpu_count() or 1) - 1}")
    return sorted(os.sched_getaffinity(0))


def run(args):
    if args.fps is not None and not args.stream:
        raise RunnerError("usage", "--fps needs --stream; run runner.py --help for the options")
    cpus = set_affinity(args.cpu_affinity)
    interpreter_class, runtime, version, fallback = load_runtime(args.runtime)
    log(f"runtime {runtime} {version}, numpy {np.__version__}, python {platform.python_version()}")
    model_path = os.path.abspath(args.model)
    hygiene = {"before": board_sysinfo.snapshot(args.sysfs_root), "after": None}
    energy_source, no_energy = board_sysinfo.find_energy_source(args.sysfs_root)
    options, delegate_detail = board_delegates.interpreter_options(sys.modules[interpreter_class.__module__],
                                                                   args.delegate, args.delegate_library)
    baseline_rss = peak_rss_mb()
    interpreter, init_ms = create_interpreter(interpreter_class, runtime, model_path, args.threads, options)
    delegate = board_delegates.which_ran(interpreter, delegate_detail)
    first_ms, latency, samples = measure(interpreter, args.warmup, args.runs, args.seed, energy_source)
    energy_mj, energy_label = board_sysinfo.energy_per_inference(energy_source, no_energy, samples, args.runs)
    peak_rss = peak_rss_mb()  # before eval, so the clips' memory does not count
    log(f"init {init_ms:.2f} ms, first {first_ms:.2f} ms, p50 {latency['p50']:.3f} ms over {args.runs} runs, "
        f"delegate {delegate}, energy {energy_label if energy_mj is None else f'{energy_mj:.4f} mJ/inference'}")
    metadata = read_tfkit_metadata(model_path)
    result = {
        "schema": SCHEMA,
        "model_path": model_path,
        "model_size_bytes": os.path.getsize(model_path),
        "runtime": runtime,
        "runtime_version": version,
        "runtime_fallback": fallback,
        "threads": args.threads,
        "warmup_runs": args.warmup,
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "latency_ms": latency,
        "peak_rss_mb": peak_rss,
        "baseline_rss_mb": baseline_rss,
        "inputs": [tensor_info(d) for d in interpreter.get_input_details()],
        "outputs": [tensor_info(d) for d in interpreter.get_output_details()],
        "host": {"python": platform.python_version(), "numpy": np.__version__, "system": platform.system(),
                 "machine": platform.machine(), "cpu_count": os.cpu_count()},
        "eval": None,
        "metadata": metadata,
        "delegate": delegate,
        "delegate_detail": delegate_detail,
        "cpu_affinity": cpus,
        "energy_mj_per_inference": energy_mj,
        "energy_source": energy_label,
        "hygiene": hygiene,
        "stream": None,
    }
    if args.stream:
        clips = load_clips(args.eval_npz, args.eval_limit) if args.eval_npz else None
        result["stream"], logits = board_stream.run(
            interpreter, metadata, clips=clips, prepare=lambda frame, d: to_model_input(frame, d, args.normalization),
            dequantize=dequantize, stats=latency_stats, warmup=args.warmup, frames=args.runs, fps=args.fps,
            seed=args.seed)
        log(f"stream: p50 {result['stream']['latency_ms']['p50']:.3f} ms per frame, {result['stream']['frames']} frames")
        if logits is not None:
            result["eval"] = board_stream.stream_eval(logits, clips[1], args.normalization, args.predictions_out,
                                                      result["stream"])
            result["peak_rss_mb_after_eval"] = peak_rss_mb()
    elif args.eval_npz:
        result["eval"] = board_eval.evaluate(interpreter, args.eval_npz, args.eval_limit, args.normalization,
                                             args.predictions_out, invoke=timed_invoke)
        result["peak_rss_mb_after_eval"] = peak_rss_mb()
        log(f"top-1 {result['eval']['accuracy']:.4f} on {result['eval']['clips']} clips")
    hygiene["after"] = board_sysinfo.snapshot(args.sysfs_root)
    return result


def _claim_stdout():
    """Point fd 1 at stderr so prints from native libraries cannot corrupt the JSON line.

    Returns a writable file for the real stdout.
    """
    try:
        sys.stdout.flush()
        real_stdout = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        return real_stdout
    except (OSError, ValueError, AttributeError):  # no real fds (embedded interpreters)
        return sys.stdout


def _emit(payload, stream, json_out):
    """Write the one JSON line; return False if the payload had to be replaced by an error."""
    ok = True
    try:
        text = json.dumps(payload, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:  # a NaN/inf timing or an odd type must still give JSON
        ok = False
        text = json.dumps({"error": f"result not serializable: {e}", "kind": "internal", "schema": SCHEMA})
    if json_out:
        try:
            tmp = json_out + ".tmp"
            with open(tmp, "w") as f:
                f.write(text + "\n")
            os.replace(tmp, json_out)
        except OSError as e:
            log(f"could not write --json-out {json_out}: {e}")
    stream.write(text + "\n")
    stream.flush()
    return ok


def main(argv=None):
    json_out = None
    stream = sys.stdout
    try:
        args = build_parser().parse_args(argv)
        json_out = args.json_out
        stream = _claim_stdout()
        if np is None:
            raise RunnerError("runtime_missing", f"numpy is not importable: {NUMPY_IMPORT_ERROR}")
        payload, code = run(args), 0
    except (RunnerError, board_delegates.DelegateError, board_stream.StreamError) as e:
        payload, code = {"error": e.message, "kind": e.kind, "schema": SCHEMA}, (2 if e.kind == "usage" else 1)
        log(f"error ({e.kind}): {e.message}")
    except Exception as e:  # noqa: BLE001 - the host must still get JSON, not just a traceback
        traceback.print_exc(file=sys.stderr)
        payload, code = {"error": f"{type(e).__name__}: {e}", "kind": "internal", "schema": SCHEMA}, 1
    if not _emit(payload, stream, json_out):
        code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
