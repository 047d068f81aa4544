"""The real LiteRT GPU accelerator, asked: which ops of a model it takes, and how its float16
outputs compare with the CPU's.

ai-edge-litert ships its GPU accelerator (libLiteRtWebGpuAccelerator.so: ML Drift over WebGPU,
Dawn on Vulkan). Any Vulkan driver serves it: a real GPU, or SwiftShader (a CPU Vulkan that
Debian's `chromium` package ships). The model is compiled in a child process whose environment
alone points the Vulkan loader at that driver; the accelerator's own partition report (its
"Following operations are not supported by GPU delegate" block, printed on the child's
stderr) is captured and parsed. `CompiledModel.is_fully_accelerated()` is not used: it answered
True with ops on the CPU.

Example:
    >>> setup = find_vulkan()  # doctest: +SKIP
    >>> run = run_gpu(Path("m.tflite"), setup)  # doctest: +SKIP
    >>> run.log.gpu_ops, run.log.refused  # doctest: +SKIP
    (48, (('RESHAPE', 'Tensor dimensions must be less than 5. input_1'),))
"""
from __future__ import annotations

import ctypes.util
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BACKEND = "LiteRT GPU accelerator (ML Drift over WebGPU/Vulkan)"
# Where Chromium builds put SwiftShader's Vulkan ICD (Debian/Ubuntu chromium, Google Chrome, Fedora).
SWIFTSHADER_ICDS = ("/usr/lib/chromium/vk_swiftshader_icd.json", "/usr/lib/chromium-browser/vk_swiftshader_icd.json",
                    "/opt/google/chrome/vk_swiftshader_icd.json", "/usr/lib64/chromium-browser/vk_swiftshader_icd.json")
HOW_TO_MEASURE = ("for a measured GPU verdict, install a Vulkan driver: a GPU's, or SwiftShader from Chromium "
                  "(`apt-get install chromium`), or point VK_ICD_FILENAMES at one")
GPU_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class VulkanSetup:
    """A Vulkan driver the accelerator can use, and the environment its child process needs."""

    icd: str  # the ICD manifest (.json) handed to the Vulkan loader
    loader_dir: str | None  # folder holding libvulkan.so.1 when the system has none (Chromium ships one)
    origin: str  # "VK_ICD_FILENAMES" or "SwiftShader"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The variables to set in the child (never in this process)."""
        out = {"VK_ICD_FILENAMES": self.icd,
               "XDG_RUNTIME_DIR": base.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()}
        if self.loader_dir:
            out["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (self.loader_dir, base.get("LD_LIBRARY_PATH")) if p)
        return out

    def describe(self) -> str:
        return f"{self.origin}: {self.icd}"


def find_vulkan(environ: Mapping[str, str] | None = None, candidates=None) -> VulkanSetup | None:
    """The user's VK_ICD_FILENAMES if it names existing files, else SwiftShader at its known paths;
    None when neither exists (then GPU verdicts are static)."""
    environ = os.environ if environ is None else environ
    user = [p for p in environ.get("VK_ICD_FILENAMES", "").split(os.pathsep) if p]
    if user and all(Path(p).is_file() for p in user):
        return VulkanSetup(os.pathsep.join(user), _loader_dir(Path(user[0])), "VK_ICD_FILENAMES")
    for icd in SWIFTSHADER_ICDS if candidates is None else candidates:
        if Path(icd).is_file():
            return VulkanSetup(icd, _loader_dir(Path(icd)), "SwiftShader")
    return None


def _loader_dir(icd: Path) -> str | None:
    """Chromium ships its own Vulkan loader beside the ICD; use it only if the system has none."""
    if ctypes.util.find_library("vulkan"):
        return None
    return str(icd.parent) if (icd.parent / "libvulkan.so.1").is_file() else None


# --- the accelerator's log ------------------------------------------------------------------------
HEADER = "Following operations are not supported by GPU delegate:"
COUNTS = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations will run on the CPU")
NONE_ON_GPU = re.compile(r"No operations will run on the GPU, and all (\d+) operations will run on the CPU")
REFUSED = re.compile(r"^([A-Z][A-Z0-9_]*(?: [A-Za-z0-9_]+)?): (.+)$")
ADAPTER = re.compile(r"Selected adapter: (.+)$")
FAILURE_MARKS = ("Failed to modify graph with delegate", "No adapters found", "Failed to initialize WebGPU",
                 "Encountered unresolved custom op", "failed to prepare", "Failed to apply delegate")


@dataclass(frozen=True)
class GpuLog:
    """What the accelerator printed while compiling a model."""

    adapter: str | None  # "SwiftShader Device (Subzero), ... backend=Vulkan, ..."
    refused: tuple[tuple[str, str], ...]  # (op as tfkit names it, message as printed), deduplicated by the delegate
    gpu_ops: int | None  # from its partition line; None when it printed none (everything on the GPU)
    cpu_ops: int | None
    failures: tuple[str, ...]  # error lines that mean the model did not load with the accelerator


def parse_gpu_log(text: str) -> GpuLog:
    """Pure parser of the accelerator's stderr (tested on saved real logs)."""
    adapter, refused, failures, in_block = None, [], [], False
    gpu = cpu = None
    for raw in text.splitlines():
        line = raw.strip()
        line = line.removeprefix("ERROR: ")
        if (m := ADAPTER.search(line)) and adapter is None:
            adapter = m.group(1).strip()
        if HEADER in line:
            in_block = True
            continue
        if (m := COUNTS.search(line)) or (n := NONE_ON_GPU.search(line)):
            gpu, cpu = (int(m.group(1)), int(m.group(2))) if m else (0, int(n.group(1)))
            in_block = False
            continue
        if in_block and (m := REFUSED.match(line)):
            op = m.group(1)
            op = f"CUSTOM:{op.split(' ', 1)[1]}" if op.startswith("CUSTOM ") else op
            if (op, m.group(2).strip()) not in refused:
                refused.append((op, m.group(2).strip()))
            continue
        if any(mark in line for mark in FAILURE_MARKS) and line not in failures:
            failures.append(line)
    return GpuLog(adapter, tuple(refused), gpu, cpu, tuple(failures))


# --- the child process ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuRun:
    loaded: bool  # the model compiled with GPU (+ CPU fallback) and ran once
    error: str  # the Python-level error when it did not
    log: GpuLog
    seconds: float  # compile + one run, in the child
    parity: dict | None  # gpu_parity's result when clips were given


def run_gpu(model: Path, setup: VulkanSetup, *, clips: Path | None = None, timeout_s: float = GPU_TIMEOUT_S) -> GpuRun:
    """Compile `model` with the GPU accelerator in a child process (environment from `setup`)."""
    from tfkit.isolate import child_command, run_child

    env_args = [f"{k}={v}" for k, v in setup.env(os.environ).items()]
    args = [str(model), *([str(clips)] if clips is not None else [])]
    # `env VAR=... python -m ...`: the variables reach only the child, and run_child keeps its
    # timeout and crash handling.
    out = run_child(__name__, args, what=str(model), timeout_s=timeout_s,
                    command=["env", *env_args, *child_command(__name__, args)])
    return GpuRun(out["loaded"], out.get("failure", ""), parse_gpu_log(out["log"]), out["seconds"], out.get("parity"))


def parity_on_clips(model: Path, clips, *, setup: VulkanSetup | None = None) -> dict:
    """`gpu_parity` of the .tflite at `model` on `clips` (N, ...) float32, normalized as the model
    expects, run by the real GPU accelerator in a child process.

    Example:
        >>> parity_on_clips(Path("m.tflite"), clips)["top1_agreement"]  # doctest: +SKIP
        1.0
    """
    import numpy as np

    from tfkit.errors import ToolNotFoundError

    setup = setup or find_vulkan()
    if setup is None:
        raise ToolNotFoundError(f"GPU parity needs the real GPU accelerator and a Vulkan driver: {HOW_TO_MEASURE}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clips.npy"
        np.save(path, np.ascontiguousarray(clips, np.float32))
        run = run_gpu(Path(model), setup, clips=path)
    if not run.loaded:
        return {"error": f"the model does not load with the GPU accelerator: {run.error}"}
    return {**(run.parity or {"error": "no parity result"}), "backend": BACKEND,
            "device": run.log.adapter or "", "vulkan": setup.describe()}


def _captured(fn):
    """Run fn() with fds 1 and 2 sent to a file (the accelerator's C++ logs go there); return
    (result or exception, the text)."""
    with tempfile.TemporaryFile() as f:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001  (the accelerator's failure is the answer, reported as text)
            result = e
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        f.seek(0)
        return result, f.read().decode("utf-8", "replace")


def _compile_and_run(path: str, accel):
    """Compile and run once (whatever the buffers hold): some kernels fail only at the first run."""
    from ai_edge_litert.compiled_model import CompiledModel

    cm = CompiledModel.from_file(path, hardware_accel=accel)
    cm.run_by_index(0, cm.create_input_buffers(0), cm.create_output_buffers(0))
    return cm


def _outputs(cm, x):
    import numpy as np

    sig = next(iter(cm.get_signature_list()))
    want = next(iter(cm.get_input_tensor_details(sig).values()))
    if list(x[None].shape) != list(want["shape"]) or np.dtype(want["dtype"]) != np.float32:
        # a buffer written with fewer values keeps whatever it held: refuse instead of comparing garbage
        raise ValueError(f"clips of shape {list(x.shape)} do not fit the model's input {list(want['shape'])} "
                         f"{want['dtype']} (GPU parity feeds float32 clips to float-input models)")
    ins, outs = cm.create_input_buffers(0), cm.create_output_buffers(0)
    ins[0].write(np.ascontiguousarray(x[None], np.float32))
    cm.run_by_index(0, ins, outs)
    det = cm.get_output_tensor_details(sig)
    first = next(iter(det.values()))
    n = int(np.prod(first["shape"]))
    return outs[0].read(n, np.float32).reshape(first["shape"])


def gpu_parity(cpu_model, gpu_model, clips) -> dict:
    """GPU (float16 arithmetic where the device has float16 shaders, CPU fallback for refused ops)
    against the CPU on real clips: the largest |difference| of any output value, how often the
    top-1 class agrees, and which arithmetic the differences show the GPU used."""
    import numpy as np

    if len(cpu_model.create_input_buffers(0)) != 1:
        raise ValueError("GPU parity feeds clips to single-input models; this one has several (a streaming model?)")
    diffs, rel, agree = [], [], 0
    for x in clips:
        a, b = _outputs(cpu_model, x), _outputs(gpu_model, x)
        diffs.append(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
        rel.append(diffs[-1] / max(float(np.max(np.abs(a))), 1e-30))
        agree += int(np.argmax(a.reshape(-1)) == np.argmax(b.reshape(-1)))
    n = len(diffs)
    # float16 arithmetic leaves relative differences near 1e-3; below 1e-5 the device computed in
    # float32 (SwiftShader has no shader-f16, measured ~1e-7), so float16 rounding was not tested.
    arithmetic = None if not n else "float32 (this device has no float16 shaders)" if max(rel) < 1e-5 else "float16"
    return {"clips": n, "max_abs_logit_diff": max(diffs) if n else None,
            "mean_max_abs_logit_diff": float(np.mean(diffs)) if n else None,
            "max_rel_logit_diff": max(rel) if n else None, "gpu_arithmetic": arithmetic,
            "top1_agreement": agree / n if n else None}


def _child(argv: list[str]) -> int:
    """`python -m tfkit.delegates.gpu_measured MODEL [CLIPS.npy]`: one JSON line on stdout."""
    import time

    import numpy as np
    from ai_edge_litert.compiled_model import CompiledModel  # noqa: F401  (imported before the memory cap)
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HA

    from tfkit.isolate import child_main

    path, clips = argv[0], (argv[1] if len(argv) > 1 else None)

    def work(_data: bytes) -> dict:
        t0 = time.perf_counter()
        gpu, log = _captured(lambda: _compile_and_run(path, HA.GPU | HA.CPU))
        out = {"loaded": not isinstance(gpu, Exception), "log": log[-200_000:],
               "seconds": round(time.perf_counter() - t0, 3)}
        if isinstance(gpu, Exception):
            out["failure"] = " ".join(str(gpu).split())[:500]
        elif clips is not None:
            cpu, _ = _captured(lambda: _compile_and_run(path, HA.CPU))
            if isinstance(cpu, Exception):
                out["parity"] = {"error": f"the CPU run failed: {' '.join(str(cpu).split())[:300]}"}
            else:
                result, _ = _captured(lambda: gpu_parity(cpu, gpu, np.load(clips, allow_pickle=False)))
                out["parity"] = ({"error": " ".join(str(result).split())[:300]} if isinstance(result, Exception)
                                 else result)
        return out

    return child_main(path, work)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))


# --- from the log to a coverage table -------------------------------------------------------------
def _aliases(flatbuffer: bytes) -> dict[int, str]:
    """tensor index -> its signature name: CompiledModel names inputs and outputs that way."""
    from tfkit.convert.flatbuffer import read_model

    out = {}
    for sig in read_model(flatbuffer).signatureDefs or []:
        for t in [*(sig.inputs or []), *(sig.outputs or [])]:
            out[int(t.tensorIndex)] = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    return out


def attribute(graph, refused: tuple[tuple[str, str], ...], aliases: Mapping[int, str],
              likely: frozenset[int] = frozenset()) -> dict[int, tuple[str, str]]:
    """op index -> (the delegate's message, the tensors it names). The delegate prints each
    distinct message once: one that names tensors goes to the ops of that kind touching them; one
    that names none ("DENSIFY: Operation is not supported.") to the ops of that kind the static
    rules refuse too (`likely`), or, if the rules refuse none of them, to every op of that kind."""
    out: dict[int, tuple[str, str]] = {}
    for name, message in refused:
        words = message.split()
        mine: dict[int, tuple[str, str]] = {}
        for op in graph.ops:
            if op.name != name or op.index in out:
                continue
            names = {n for t in (*op.inputs, *op.outputs) for n in (t.name, aliases.get(t.index)) if n}
            hit = [w for w in words if w in names]
            mine[op.index] = (" ".join(w for w in words if w not in hit), " ".join(hit))
        named = {i: v for i, v in mine.items() if v[1]}
        out.update(named or {i: v for i, v in mine.items() if i in likely} or mine)
    return out


def disagreements(static, measured) -> tuple[str, ...]:
    """Where the static rules and the real delegate decided an op differently, grouped by kind."""
    rows: dict[tuple[str, str, str], int] = {}
    for s, m in zip(static, measured, strict=True):
        if s.delegated != m.delegated:
            say = (lambda d: "GPU" if d.delegated else f"CPU ({d.reason})")
            key = (s.op, say(s), say(m))
            rows[key] = rows.get(key, 0) + 1
    return tuple(f"{op} x{n}: static rules say {a}; the delegate put it on {b}" for (op, a, b), n in rows.items())


def measure_coverage(provider, graph, flatbuffer: bytes, static, *, setup: VulkanSetup | None = None):
    """The GPU accelerator's own verdict where a Vulkan driver exists, the static one (with a note)
    where it does not. `static` is the rules' Coverage; its disagreements are listed."""
    from dataclasses import replace
    from importlib.metadata import version

    from tfkit.delegates.base import DelegateProvider, OpDecision, summarize
    from tfkit.errors import TfkitError

    setup = setup or find_vulkan()
    if setup is None:
        return replace(static, notes=(*static.notes, f"static verdict: no Vulkan driver found; {HOW_TO_MEASURE}"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(flatbuffer)
        try:
            run = run_gpu(path, setup)
        except TfkitError as e:
            why = f"static verdict: the GPU accelerator could not be asked ({setup.describe()}): {e}"
            return replace(static, notes=(*static.notes, why))
    if run.log.adapter is None:
        why = "; ".join(run.log.failures) or run.error or "no adapter"
        why = f"static verdict: no usable Vulkan device ({setup.describe()}): {why}; {HOW_TO_MEASURE}"
        return replace(static, notes=(*static.notes, why))
    source = f"measured: ai-edge-litert {version('ai-edge-litert')} GPU accelerator (WebGPU/Vulkan, {run.log.adapter})"
    # Checked against the rules for the backend that ran, so a difference is a rule to fix.
    drift = type(provider)(measure=False, backend="ml_drift")
    static_decisions = drift.decide(graph)
    if not run.loaded:
        why = "; ".join(run.log.failures) or run.error
        decisions = [OpDecision(op.index, op.name, False, f"the model does not load with the GPU accelerator: {why}")
                     for op in graph.ops]
    else:
        likely = frozenset(d.index for d in DelegateProvider.decide(drift, graph) if not d.delegated)  # rules, no partition
        decisions = provider.decide(graph, refused=attribute(graph, run.log.refused, _aliases(flatbuffer), likely))
    notes = [n for n in static.notes if not n.startswith("LiteRT analyzer")]
    cov = summarize(provider.name, decisions, source=source, notes=notes, measured=True, backend=BACKEND, graph=graph)
    on_gpu = sum(d.delegated for d in decisions)
    if run.loaded and run.log.gpu_ops is not None and run.log.gpu_ops != on_gpu:
        notes.append(f"the delegate reported {run.log.gpu_ops} ops on the GPU and {run.log.cpu_ops} on the CPU; the "
                     f"per-op rows, attributed from its messages, give {on_gpu} on the GPU: counts are the delegate's")
        total = run.log.gpu_ops + run.log.cpu_ops
        verdict = "full" if run.log.cpu_ops == 0 else "none" if run.log.gpu_ops == 0 else "partial"
        cov = replace(cov, ops_total=total, ops_delegated=run.log.gpu_ops, verdict=verdict)
    notes.append(f"static rules for the classic delegate (OpenCL/OpenGL ES on Android): {static.summary()}")
    notes.append(f"compiled and ran once in {run.seconds:.2f} s on {setup.describe()}; timings on a software Vulkan "
                 "mean nothing for phones, its coverage does")
    differ = disagreements(static_decisions, decisions)
    predicted = sum(d.delegated for d in static_decisions)
    if run.loaded and cov.ops_delegated != predicted:
        differ += (f"count: the static rules put {predicted} ops on the GPU, the delegate reported {cov.ops_delegated}",)
    return replace(cov, notes=tuple(notes), disagreements=differ)

