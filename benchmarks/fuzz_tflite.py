"""Fuzz `tfkit check` and `tfkit inspect` with damaged .tflite files: seeded mutations (bit flips,
truncation, byte splices, huge offsets and lengths, non-UTF-8 strings, zeroed and inserted runs) of
real tfkit-made files and hand-built ones, each run through the real CLI as a subprocess with a
timeout. Goal: 0 tracebacks, 0 hangs, 0 crashes of tfkit itself, 0 internal exception names in
what the user reads, and every failure explained by one `error:` line.

    nice python benchmarks/fuzz_tflite.py --count 240 --json benchmarks/results/fuzz_tflite.json

Seeds: a tiny zoo model built and converted by the tfkit CLI (float32 and int8, with tfkit
metadata; skipped with --no-tfkit-seeds) and hand-built flatbuffers (an ADD graph with a signature
and tfkit metadata holding non-ASCII labels; the same without metadata; a CUSTOM op).
"""
from __future__ import annotations

import argparse
import collections
import random
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# What the user must never read: Python's own exception names and tracebacks.
INTERNAL = re.compile(r"Traceback \(most recent call last\)|\b(?:UnicodeDecodeError|UnicodeEncodeError|UnicodeError|"
                      r"KeyError|IndexError|struct\.error|ValueError|TypeError|AttributeError|RecursionError|"
                      r"MemoryError|OverflowError|AssertionError|RuntimeError|ZeroDivisionError|NameError|"
                      r"SystemError|JSONDecodeError|NotImplementedError|UnboundLocalError|FileNotFoundError)\b")
TRACEBACK = "Traceback (most recent call last)"


# --- seeds ----------------------------------------------------------------------------------------


def hand_built() -> dict[str, bytes]:
    """Flatbuffers written field by field with LiteRT's schema (no TensorFlow)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as s

    from tfkit.convert.flatbuffer import write_model
    from tfkit.convert.metadata import InputSpec, ModelMetadata, embed_metadata

    def tensor(name: str, shape, buffer: int):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array(shape, np.int32), s.TensorType.FLOAT32, buffer
        return t

    def graph_model(custom: bool) -> bytes:
        code = s.OperatorCodeT()
        if custom:
            code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
            code.customCode = "TfkitFuzzOp"
        else:
            code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
        code.version = 1
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1], np.int32), np.array([2], np.int32)
        if not custom:
            op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.AddOptions, s.AddOptionsT()
        graph = s.SubGraphT()
        graph.tensors = [tensor("a", [1, 4], 1), tensor("b", [1, 4], 2), tensor("sum", [1, 4], 3)]
        graph.inputs, graph.outputs = np.array([0, 1], np.int32), np.array([2], np.int32)
        graph.operators, graph.name = [op], "main"
        buffers = [s.BufferT() for _ in range(5)]
        buffers[4].data = np.frombuffer(b"1.14.0\0\0\0\0\0\0\0\0\0\0", np.uint8)
        runtime = s.MetadataT()
        runtime.name, runtime.buffer = "min_runtime_version", 4
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs, sig.outputs = [], []
        for index, name in ((0, "a"), (1, "b")):
            t = s.TensorMapT()
            t.name, t.tensorIndex = name, index
            sig.inputs.append(t)
        out = s.TensorMapT()
        out.name, out.tensorIndex = "sum", 2
        sig.outputs.append(out)
        model = s.ModelT()
        model.version, model.description = 3, "hand-built for tfkit's fuzz run"
        model.operatorCodes, model.subgraphs, model.buffers = [code], [graph], buffers
        model.metadata, model.signatureDefs = [runtime], [sig]
        return write_model(model)

    plain = graph_model(custom=False)
    meta = ModelMetadata(labels=("café", "横", "up"), normalization="symmetric", pixel_scale=2 / 255,
                         pixel_offset=-1.0, frames=1, size=4, stride=1, fps=None, form="clip", precision="float32",
                         input=InputSpec("a", (1, 4), "float32"), stream=None, recommended_delegate="gpu",
                         model={}, tfkit_version="0.1.0")
    return {"hand_add_meta": embed_metadata(plain, meta), "hand_add": plain, "hand_custom": graph_model(custom=True)}


def tfkit_made(work: Path) -> dict[str, bytes]:
    """A tiny zoo model built and converted by the tfkit CLI itself (float32 and int8)."""
    cli = [sys.executable, "-m", "tfkit.cli.main"]

    def run(*args: str) -> None:
        subprocess.run([*cli, *args], check=True, capture_output=True, timeout=900)

    run("data", "--videos-per-class", "4", "--video-frames", "12", "--video-size", "40", "--frames", "4",
        "--size", "32", "--out", str(work / "data"))
    run("build", "--classes", "7", "--frames", "4", "--size", "32", "--stages", "3", "--head-channels", "32",
        "--frame-stack", "--out", str(work / "model"))
    out = {}
    for precision in ("float32", "int8"):
        run("convert", str(work / "model"), "--data", str(work / "data"), "--precision", precision,
            "--out", str(work / precision))
        out[f"tfkit_{precision}"] = (work / precision / "model.tflite").read_bytes()
    return out


# --- mutations ------------------------------------------------------------------------------------


def _bit_flips(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 24)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.choice([rng.randrange(0, 16), rng.randrange(len(data))]):]


def _splice(data: bytearray, rng: random.Random) -> None:
    n = rng.randint(4, max(4, len(data) // 8))
    src, dst = rng.randrange(len(data)), rng.randrange(len(data))
    chunk = data[src:src + n]
    data[dst:dst + len(chunk)] = chunk


def _huge_offset(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):  # a uoffset, a vector length or a vtable entry now points far away
        i = rng.randrange(0, max(1, len(data) - 4)) & ~3
        data[i:i + 4] = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x00FFFFFF, len(data) + 4]).to_bytes(4, "little")


def _non_utf8(data: bytearray, rng: random.Random) -> None:
    runs = [m.span() for m in re.finditer(rb"[ -~]{4,}", bytes(data))]  # names, metadata JSON, custom codes
    for start, end in rng.sample(runs, min(len(runs), rng.randint(1, 6))) if runs else ():
        i = rng.randrange(start, end)
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\x80"])
        data[i:i + len(bad)] = bad[:end - i]


def _json_damage(data: bytearray, rng: random.Random) -> None:
    """Valid UTF-8, broken meaning: the tfkit metadata JSON gets stray brackets, quotes and wrong types."""
    found = re.search(rb'[ -~]*"labels":[ -~]*', bytes(data))  # the printable run holding the JSON
    if found is None:
        return _bit_flips(data, rng)
    start, end = found.span()
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(start, max(start + 1, end))
        data[i:i + 1] = rng.choice([b"[", b"{", b"]", b"}", b'"', b",", b":", b"-", b"9", b"e", b"n", b" "])
    return None


def _zero_run(data: bytearray, rng: random.Random) -> None:
    i, n = rng.randrange(len(data)), rng.randint(1, 64)
    data[i:i + n] = bytes(len(data[i:i + n]))


def _insert(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    data[i:i] = rng.randbytes(rng.randint(1, 32))


MUTATIONS = {"bit_flips": _bit_flips, "truncate": _truncate, "splice": _splice, "huge_offset": _huge_offset,
             "non_utf8": _non_utf8, "json_damage": _json_damage, "zero_run": _zero_run, "insert": _insert}


def mutants(seeds: dict[str, bytes], count: int, seed: int) -> list[tuple[str, str, bytes]]:
    """`count` (seed name, mutation, bytes), every mutation kind in turn, reproducible from `seed`."""
    rng, names, kinds, out = random.Random(seed), sorted(seeds), list(MUTATIONS), []
    for i in range(count):
        name, kind = names[(i // len(kinds)) % len(names)], kinds[i % len(kinds)]
        data = bytearray(seeds[name])
        MUTATIONS[kind](data, rng)
        out.append((name, kind, bytes(data)))
    return out


# --- running the CLI ------------------------------------------------------------------------------

COMMANDS = {"check": ["check", "{file}", "--delegate", "all"], "inspect": ["inspect", "{file}"]}


def run_cli(command: str, path: Path, timeout_s: float) -> dict:
    argv = [sys.executable, "-m", "tfkit.cli.main", *(a.format(file=path) for a in COMMANDS[command])]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
        rc, out = done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")
        stderr = done.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        rc, out, stderr = None, "", ""
    seconds = time.perf_counter() - t0
    names = sorted({m.group(0) for m in INTERNAL.finditer(out)})
    from tfkit._compat.tflogs import is_noise  # TensorFlow/LiteRT log lines that reached the user

    noisy = any(is_noise(line.encode()) for line in stderr.splitlines())
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    return {"command": command, "rc": rc, "seconds": round(seconds, 2), "hang": rc is None,
            "traceback": TRACEBACK in out, "crash": rc is not None and rc < 0, "internal_names": names,
            # a failure must say why in one `error:` line (exit 2: the file's fault, 1: a tool's)
            "unexplained": rc not in (None, 0) and not (rc in (1, 2) and errors),
            "repeated_error": any(line.lower().count("error:") > 1 for line in errors),  # "error: ... error: ..."
            "message": errors[-1] if errors else None, "noisy": noisy}


def judge(case: dict) -> list[str]:
    """What is wrong with one run (empty: clean)."""
    return [k for k in ("hang", "traceback", "crash", "unexplained", "repeated_error") if case[k]] + \
        (["internal_names"] if case["internal_names"] else [])


def fuzz(seeds: dict[str, bytes], count: int, seed: int, timeout_s: float, jobs: int, work: Path) -> dict:
    cases = []
    files = []
    for i, (name, kind, data) in enumerate(mutants(seeds, count, seed)):
        path = work / f"{i:04d}-{name}-{kind}.tflite"
        path.write_bytes(data)
        files.append((i, name, kind, path))
    tasks = [(f, command) for f in files for command in COMMANDS]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda t: run_cli(t[1], t[0][3], timeout_s), tasks))
    for ((i, name, kind, path), _), result in zip(tasks, results):
        cases.append({"index": i, "seed": name, "mutation": kind, "file": path.name, **result})
    problems = [dict(c, problems=judge(c)) for c in cases if judge(c)]
    by = collections.defaultdict(lambda: collections.Counter())
    for c in cases:
        outcome = "hang" if c["hang"] else "ok" if c["rc"] == 0 else f"exit {c['rc']}"
        by[c["command"]][outcome] += 1
    by_file = collections.defaultdict(dict)
    for c in cases:
        by_file[c["file"]][c["command"]] = c
    # Files one command reads and the other refuses (check also runs LiteRT; inspect also parses the metadata)
    only = {f"{a}_refuses_{b}_reads": [pair[a]["message"] for pair in by_file.values()
                                       if pair[a]["rc"] not in (0, None) and pair[b]["rc"] == 0]
            for a, b in (("check", "inspect"), ("inspect", "check"))}
    messages = collections.Counter(re.sub(r"\S*/\S*\.tflite", "FILE", c["message"])[:160]
                                   for c in cases if c["message"])
    return {
        "files": len(files), "runs": len(cases), "seed": seed, "timeout_s": timeout_s,
        "seeds": {name: len(data) for name, data in sorted(seeds.items())},
        "mutations": sorted(MUTATIONS),
        "tracebacks": sum(c["traceback"] for c in cases), "hangs": sum(c["hang"] for c in cases),
        "crashes": sum(c["crash"] for c in cases),
        "internal_names": sum(bool(c["internal_names"]) for c in cases),
        "unexplained_failures": sum(c["unexplained"] for c in cases),
        "repeated_error_prefix": sum(c["repeated_error"] for c in cases),
        "runs_with_tf_log_noise": sum(c["noisy"] for c in cases),
        "outcomes": {k: dict(v) for k, v in by.items()},
        "max_seconds": max((c["seconds"] for c in cases), default=0.0),
        "slowest": [(c["file"], c["command"], c["seconds"]) for c in sorted(cases, key=lambda c: -c["seconds"])[:3]],
        "median_seconds": sorted(c["seconds"] for c in cases)[len(cases) // 2] if cases else 0.0,
        "common_messages": messages.most_common(12),
        "disagreements": {k: {"files": len(v), "examples": sorted(set(v))[:4]} for k, v in only.items()},
        "problems": problems[:40],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=240, help="mutated files (each goes through check and inspect)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per CLI run before it counts as a hang")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-tfkit-seeds", action="store_true", help="hand-built seeds only (no TensorFlow)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the seeds and mutants (default: a temp one)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _emit import emit

    with tempfile.TemporaryDirectory(prefix="tfkit-fuzz-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        seeds = hand_built()
        if not args.no_tfkit_seeds:
            seeds.update(tfkit_made(work / "seeds"))
        t0 = time.perf_counter()
        result = fuzz(seeds, args.count, args.seed, args.timeout, args.jobs, work)
        result["wall_s"] = round(time.perf_counter() - t0, 1)
    emit(result, args.json)
    print(f"fuzz: {result['files']} files, {result['runs']} runs: {result['tracebacks']} tracebacks, "
          f"{result['hangs']} hangs, {result['crashes']} crashes, {result['internal_names']} with internal "
          f"exception names, {result['unexplained_failures']} unexplained failures, "
          f"{result['repeated_error_prefix']} 'error: ... error:' messages "
          f"(max {result['max_seconds']} s per run)", file=sys.stderr)


if __name__ == "__main__":
    main()
