"""LiteRT benchmark_model: every recording in tests/data/benchmark_model parsed, the failures it
prints worded with the device's own words, and the command line per delegate.

The expected numbers next to each file name were read by hand from that file (see its SOURCES.md);
a new recording without an entry here fails `test_every_recording_is_expected`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tfkit.bench.benchmark_model import benchmark_model_command, big_cores, cpu_mask, parse_benchmark_model
from tfkit.delegates.base import delegate_names, get_delegate
from tfkit.errors import BenchmarkError, UsageError

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmark_model"
NAN = math.nan
BIN, MODEL = "/data/local/tmp/benchmark_model", "/data/local/tmp/m.tflite"

@dataclass(frozen=True)
class Want:
    """What a result file says: latency in ms (NaN: not printed), init/first inference/peak memory."""

    mean: float
    p50: float
    runs: int
    init_ms: float
    first_ms: float
    peak_mb: float = NAN
    threads: int = -1
    delegate: str = "default"
    size: int = 0
    extra: dict = field(default_factory=dict)
    op_profile: tuple = ()  # Summary by node type: (node type, count, avg ms, %)
    nodes: int = 0  # rows of the Run Order table
    first_node: tuple = ()  # (node type, name, first ms, %) of its first row
    init_profile: tuple = ()
    delegated: tuple = ()  # the "Replacing N out of M node(s)" lines


@dataclass(frozen=True)
class Fails:
    """What a failure file must give: the error kind and the device's own line, quoted."""

    kind: str
    words: str


# file -> (stream, exit code, what the file says), read by hand from the file.
EXPECTED: dict[str, tuple[str, int, Want | Fails]] = {
    # "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9"
    "readme_op_profiling.txt": ("stdout", 0, Want(
        mean=79.7609, p50=NAN, runs=0, init_ms=38.467, first_ms=NAN,
        extra={"summary_shape": "2019", "warmup_avg_ms": 83.235, "op_profile_format": "tflite"},
        op_profile=(("CONV_2D", 15, 1.406, 89.270), ("DEPTHWISE_CONV_2D", 13, 0.169, 10.730),
                    ("SOFTMAX", 1, 0.0, 0.0), ("RESHAPE", 1, 0.0, 0.0), ("AVERAGE_POOL_2D", 1, 0.0, 0.0)),
        nodes=31, first_node=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]", 4.269, 0.107))),
    # "... tflite  : Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, ..."
    "logcat_apk_measurement.txt": ("stdout", 0, Want(
        mean=14.5752, p50=NAN, runs=0, init_ms=5.685, first_ms=18.535, extra={"warmup_avg_ms": 14.4623})),
    # "... Init: 1007529, First inference: 4098, Warmup (avg): 1686.59, Inference (avg): 1687.92"
    "logcat_apk_android_readme.txt": ("stdout", 0, Want(
        mean=1.68792, p50=NAN, runs=0, init_ms=1007.529, first_ms=4.098, extra={"warmup_avg_ms": 1.68659})),
    # count=56 ... avg=17962.5 std=379 p5=17681 median=17861 p95=18812; Init: 61402, First inference: 24751
    "constructed_info_xnnpack_percentiles_peak.txt": ("stdout", 0, Want(
        mean=17.9625, p50=17.861, runs=56, init_ms=61.402, first_ms=24.751, peak_mb=37.8125, threads=4,
        delegate="xnnpack", size=13978600,
        extra={"latency_p5_ms": 17.681, "latency_p95_ms": 18.812, "latency_min_ms": 17.655,
               "latency_max_ms": 19.82, "latency_std_ms": 0.379, "warmup_avg_ms": 18.5163, "warmup_runs": 27,
               "memory_delta_init_mb": 24.2852, "memory_delta_overall_mb": 31.6602, "vm_rss_end_mb": 36.0},
        delegated=({"delegate": "xnnpack", "kernel": "TfLiteXNNPackDelegate", "nodes": 66, "of": 66,
                    "partitions": 1},))),
    # count=50 ... avg=40198.3 std=310 (no percentiles); "Peak memory footprint (MB): init=2.54297 overall=…"
    "constructed_2020_no_prefix.txt": ("stdout", 0, Want(
        mean=40.1983, p50=NAN, runs=50, init_ms=3.105, first_ms=52.408, threads=1, size=4276350,
        extra={"latency_std_ms": 0.31, "warmup_avg_ms": 41.2876, "warmup_runs": 12,
               "memory_delta_init_mb": 2.54297, "memory_delta_overall_mb": 9.26562})),
    # count=117 ... avg=8611.4 ... median=8560; GPU partially applied w/ 1 kernel; Summary by node type rows
    "constructed_gpu_partial_op_profiling.txt": ("stdout", 0, Want(
        mean=8.6114, p50=8.56, runs=117, init_ms=1212.834, first_ms=14.876, threads=4, delegate="gpu",
        size=27286200, extra={"latency_p5_ms": 8.396, "latency_p95_ms": 9.107, "warmup_runs": 57,
                              "op_profile_format": "tflite",
                              "memory_delta_init_mb": 61.2109, "memory_delta_overall_mb": 63.4883},
        op_profile=(("TfLiteGpuDelegateV2", 1, 7.418, 87.995),
                    ("TFLite_Detection_PostProcess", 1, 1.012, 12.005)),
        nodes=2, first_node=("TfLiteGpuDelegateV2",
                             "[raw_outputs/box_encodings, raw_outputs/class_predictions]:64", 7.522, 87.995),
        init_profile=(("ModifyGraphWithDelegate", 1, 1204.311, 99.967), ("AllocateTensors", 1, 0.402, 0.033)),
        delegated=({"delegate": "gpu", "kernel": "TfLiteGpuDelegateV2", "nodes": 63, "of": 64,
                    "partitions": 2},))),
    # "Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate."
    "constructed_nnapi_not_executed.txt": ("stdout", 0, Want(
        mean=15.9623, p50=15.918, runs=63, init_ms=24.118, first_ms=19.877, threads=4, size=1204180,
        extra={"delegates_declined": ["nnapi"]})),
    # stats: count=193 … avg=5172.45 median=5139; block: Model initialization: 412.73 ms, Peak memory: 44.12
    "constructed_compiled_model.txt": ("stdout", 0, Want(
        mean=5.17245, p50=5.139, runs=193, init_ms=412.73, first_ms=9.80, peak_mb=44.12, size=13978600,
        extra={"format": "compiled_model", "signature": "serving_default", "warmup_avg_ms": 5.22,
               "warmup_runs": 96, "throughput_mb_per_s": 116.01, "memory_init_mb": 38.27,
               "memory_overall_mb": 41.05, "latency_min_ms": 4.969, "latency_max_ms": 6.011})),
    # the same run with --use_profiler: the CompiledModel profiler's space-aligned tables after the block
    "constructed_compiled_model_profiler.txt": ("stdout", 0, Want(
        mean=5.17245, p50=5.139, runs=193, init_ms=412.73, first_ms=9.80, peak_mb=44.12, size=13978600,
        extra={"format": "compiled_model", "op_profile_format": "litert"},
        op_profile=(("TfLiteXNNPackDelegate", 1, 4.410, 72.012),
                    ("Delegate/Convolution (NHWC, F32) IGEMM", 1, 1.102, 17.995),
                    ("TFLite_Detection_PostProcess", 1, 0.612, 9.993)),
        nodes=3, first_node=("TfLiteXNNPackDelegate", "[Builtin]:64", 4.890, 72.012))),
    "constructed_error_gpu_delegate_failed.txt": ("stdout", 1, Fails(
        "delegate", "Failed to apply GPU delegate.")),
    "constructed_error_model_not_found.txt": ("stdout", 1, Fails(
        "model_not_found", "Could not open '/data/local/tmp/missing_model.tflite'.")),
    "wrong_abi_mksh_64bit.txt": ("stderr", 1, Fails(
        "wrong_abi", "E: mksh: /tmp/abi/benchmark_model_arm64: not executable: 64-bit ELF file")),
    "wrong_abi_bash.txt": ("stderr", 126, Fails(
        "wrong_abi",
        "bash: line 1: /tmp/abi/benchmark_model_arm64: cannot execute binary file: Exec format error")),
    "binary_missing_mksh.txt": ("stderr", 127, Fails(
        "binary_missing", "E: mksh: /tmp/abi/nope: inaccessible or not found")),
    "binary_not_executable_mksh.txt": ("stderr", 126, Fails(
        "binary_not_executable",
        "E: mksh: /tmp/abi/benchmark_model_arm32: can't execute: Permission denied")),
}


def _run(file: str, **kwargs):
    stream, rc, _ = EXPECTED[file]
    text = (DATA / file).read_text()
    out, err = (text, "") if stream == "stdout" else ("", text)
    return parse_benchmark_model(out, err, rc, name="m", precision="float32", device="adb:R58M", **kwargs)


def _same(actual: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_every_recording_is_expected():
    files = {p.name for p in DATA.glob("*.txt")}
    assert files == set(EXPECTED), f"recordings without an expectation: {files - set(EXPECTED)}"


@pytest.mark.parametrize("file", sorted(p.name for p in DATA.glob("*.txt")))
def test_recording(file):
    want = EXPECTED[file][2]
    if isinstance(want, Fails):
        with pytest.raises(BenchmarkError) as err:
            _run(file)
        head, _, tails = str(err.value).partition("\n")
        assert f'm (float32) on adb:R58M failed [{want.kind}]: "{want.words}". ' in head  # then the tails
        assert want.words in tails  # the device's output itself is shown too
        return
    result = _run(file)
    got = result.latency_ms
    for label, value, expected in (("mean", got.mean, want.mean), ("p50", got.p50, want.p50),
                                   ("init", result.init_ms, want.init_ms),
                                   ("first", result.first_inference_ms, want.first_ms),
                                   ("peak", result.peak_rss_mb, want.peak_mb)):
        assert _same(value, expected), (label, value, expected)
    assert math.isnan(got.p90) and math.isnan(got.p99)  # never printed by the tool, never synthesized
    assert (got.runs, result.threads, result.delegate, result.size_bytes) == (
        want.runs, want.threads, want.delegate, want.size)
    assert result.energy_mj_per_inference is None and result.energy_source.startswith("unavailable")
    for key, value in want.extra.items():
        assert result.extra[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert result.extra["percentile_method"].startswith("not printed") == math.isnan(want.p50)
    assert _rows(result.extra["op_profile"]) == _approx(want.op_profile)
    nodes = result.extra["op_profile_nodes"]
    assert len(nodes) == want.nodes
    if want.first_node:
        node_type, name, first, percent = want.first_node
        assert (nodes[0]["node_type"], nodes[0]["name"]) == (node_type, name)
        assert (nodes[0]["first_ms"], nodes[0]["percent"]) == (pytest.approx(first), pytest.approx(percent))
    init = result.extra["op_profile_tables"].get("init/primary/Summary by node type", [])
    assert _rows(init) == _approx(want.init_profile)
    assert result.extra["delegated_nodes"] == list(want.delegated)


def _rows(rows: list[dict]) -> list[tuple]:
    return [(r["node_type"], r["count"], r["avg_ms"], r["percent"]) for r in rows]


def _approx(rows: tuple) -> list[tuple]:
    return [(t, c, pytest.approx(a), pytest.approx(p)) for t, c, a, p in rows]


def test_readme_tables_keep_the_older_start_column():
    nodes = _run("readme_op_profiling.txt").extra["op_profile_tables"]["run/primary/Top by Computation Time"]
    assert len(nodes) == 10  # the tool's default top 10
    assert nodes[0] == {"node_type": "CONV_2D", "start_ms": 19.352, "first_ms": 6.652, "avg_ms": 6.652,
                        "percent": 0.167, "cdf_percent": 0.167, "mem_kb": 0.0, "times_called": 0,
                        "name": "[MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6]"}


def test_compiled_model_streams_apart_read_the_same():
    """The CompiledModel tool prints its block on stderr and the statistics lines on stdout."""
    text = (DATA / "constructed_compiled_model.txt").read_text()
    cut = text.index("INFO: [benchmark_litert_model.h:89]")
    apart = parse_benchmark_model(text[:cut], text[cut:], 0, name="m", precision="int8", device="adb:R58M")
    together = _run("constructed_compiled_model.txt")
    assert apart.latency_ms == together.latency_ms and apart.peak_rss_mb == together.peak_rss_mb
    assert apart.runtime == "litert benchmark_model (CompiledModel)"


def test_compiled_model_without_statistics_lines_says_so():
    text = (DATA / "constructed_compiled_model.txt").read_text()
    block = text[text.index("INFO: [benchmark_litert_model.h:89]"):]
    result = parse_benchmark_model("", block, 0, name="m", precision="int8", device="adb:X",
                                   expected_delegate="gpu")
    # "Inference (avg):      5.17 ms (193 runs)"
    assert (result.latency_ms.mean, result.latency_ms.runs) == (5.17, 193)
    assert math.isnan(result.latency_ms.p50) and result.extra["percentile_method"].startswith("not printed")
    assert result.delegate == "gpu" and "names no delegate" in result.extra["delegate_note"]


def test_asked_for_delegate_that_took_nothing_is_an_error_with_its_words():
    with pytest.raises(BenchmarkError, match=r"failed \[delegate\]: nnapi was asked for but the run was "
                                             r"default's \(Though NNAPI delegate is explicitly applied"):
        _run("constructed_nnapi_not_executed.txt", expected_delegate="nnapi")
    assert _run("constructed_gpu_partial_op_profiling.txt", expected_delegate="gpu").delegate == "gpu"
    with pytest.raises(BenchmarkError, match="xnnpack was asked for but the run was gpu's"):
        _run("constructed_gpu_partial_op_profiling.txt", expected_delegate="xnnpack")


def test_what_tfkit_asked_for_wins_over_the_log():
    result = _run("constructed_info_xnnpack_percentiles_peak.txt", threads=2, size_bytes=14_000_000)
    assert (result.threads, result.size_bytes) == (2, 14_000_000)


# ---- untrusted output: cut off, garbage, absurd ----------------------------------------------------
XNN = (DATA / "constructed_info_xnnpack_percentiles_peak.txt").read_text()


def _parse(stdout: str, rc: int = 0, stderr: str = ""):
    return parse_benchmark_model(stdout, stderr, rc, name="m", precision="int8", device="adb:R58M")


@pytest.mark.parametrize("cut_at", ["INFO: Inference timings in us: Init: 61402, First inf",
                                    "INFO: Running benchmark for at least 50", "INFO: Loaded model"])
def test_output_cut_before_the_summary_names_what_is_missing(cut_at):
    head = XNN[:XNN.index(cut_at) + len(cut_at)]
    with pytest.raises(BenchmarkError, match="printed no result") as err:
        _parse(head)
    assert head.splitlines()[-1] in str(err.value)  # the device's last words are shown


def test_a_cut_statistics_line_is_refused():
    line = next(line for line in XNN.splitlines() if line.startswith("INFO: count=56 "))
    text = XNN.replace(line, "INFO: count=56 first=17991 curr=17")
    with pytest.raises(BenchmarkError, match="'count=56 first=17991 curr=17' is cut off or malformed"):
        _parse(text)


@pytest.mark.parametrize("old, new, words", [
    ("Inference (avg): 17962.5", "Inference (avg): 18962.5", "disagree with the summary"),  # two runs mixed
    ("min=17655 max=19820", "min=18655 max=17820", "not ordered"),
    ("Inference (avg): 17962.5", "Inference (avg): nan", "'nan', not a finite number"),
    ("Init: 61402,", "Init: -61402,", "not a finite number >= 0"),
])
def test_absurd_numbers_are_refused(old, new, words):
    assert old in XNN
    with pytest.raises(BenchmarkError, match=words):
        _parse(XNN.replace(old, new))


def test_two_runs_concatenated_are_refused():
    with pytest.raises(BenchmarkError, match="2 summary lines"):
        _parse(XNN + XNN)


def test_a_result_followed_by_a_failing_exit_is_not_trusted():
    with pytest.raises(BenchmarkError, match="printed a result but then exit code 1; not trusting it"):
        _parse(XNN, rc=1)


@pytest.mark.parametrize("rc, words", [(139, "killed by SIGSEGV (exit code 139)"),
                                       (137, "SIGKILL - often the out-of-memory killer"),
                                       (0, "exit code 0")])
def test_garbage_shows_the_device_words_and_exit(rc, words):
    with pytest.raises(BenchmarkError) as err:
        _parse("", rc=rc, stderr="Segmentation fault\n")
    assert words in str(err.value) and "Segmentation fault" in str(err.value)


def test_a_cut_op_profiling_row_is_refused():
    text = (DATA / "constructed_gpu_partial_op_profiling.txt").read_text()
    row = next(line for line in text.splitlines()
               if line.startswith("\t") and "TFLite_Detection_PostProcess\t" in line)
    with pytest.raises(BenchmarkError, match="does not fit its"):
        _parse(text.replace(row, row.split("\t%")[0][:60], 1))


def test_a_compiled_block_without_its_average_is_refused():
    text = (DATA / "constructed_compiled_model.txt").read_text()
    line = next(line for line in text.splitlines() if "Inference (avg):" in line)
    with pytest.raises(BenchmarkError, match=r"has no 'Inference \(avg\)' line"):
        _parse(text.replace(line + "\n", ""))


# ---- the command line ------------------------------------------------------------------------------
def test_command_for_the_default_cpu_path_pinned_to_big_cores():
    argv = benchmark_model_command(BIN, MODEL, threads=4, delegate="default", big_cores=[4, 5, 6, 7],
                                   warmup=5, runs=50)
    assert argv == ["taskset", "f0", BIN, f"--graph={MODEL}", "--num_threads=4", "--warmup_runs=5",
                    "--num_runs=50", "--report_peak_memory_footprint=true"]


@pytest.mark.parametrize("delegate", delegate_names())
def test_command_carries_each_providers_flags_and_our_threads(delegate):
    argv = benchmark_model_command(BIN, MODEL, threads=2, delegate=delegate, op_profiling=True,
                                   peak_memory=False)
    provider_flags = [f for f in get_delegate(delegate).benchmark_flags if not f.startswith("--num_threads=")]
    assert argv[0] == BIN and argv[-1] == "--enable_op_profiling=true"
    assert argv[5:-1] == provider_flags and provider_flags
    assert [a for a in argv if a.startswith("--num_threads=")] == ["--num_threads=2"]


@pytest.mark.parametrize("delegate, flag", [("gpu", "--use_gpu=true"), ("nnapi", "--use_nnapi=true"),
                                            ("xnnpack", "--use_xnnpack=true"),
                                            ("edgetpu", "--external_delegate_path=libedgetpu.so.1"),
                                            ("none", "--use_xnnpack=false")])
def test_command_selects_the_delegate(delegate, flag):
    assert flag in benchmark_model_command(BIN, MODEL, threads=1, delegate=delegate)


def test_command_takes_the_external_delegate_library_on_the_phone():
    argv = benchmark_model_command(BIN, MODEL, threads=1, delegate="edgetpu",
                                   delegate_library="/data/local/tmp/libedgetpu.so")
    assert [a for a in argv if "external_delegate_path" in a] == [
        "--external_delegate_path=/data/local/tmp/libedgetpu.so"]


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"runs": 0}, {"warmup": -1}, {"threads": True},
                                    {"big_cores": [-1]}, {"big_cores": ["4"]}, {"delegate": "tpu"}])
def test_command_refuses_bad_values(kwargs):
    with pytest.raises(UsageError):
        benchmark_model_command(BIN, MODEL, **{"threads": 4, "delegate": "default", **kwargs})


def test_cpu_mask():
    assert [cpu_mask(c) for c in ([0], [4, 5, 6, 7], [0, 2], [8], [7])] == ["1", "f0", "5", "100", "80"]


def test_big_cores_pick_the_fastest_cluster():
    pixel = {f"cpu{i}": 1803000 for i in range(4)} | {"cpu4": 2253000, "cpu5": 2253000, "cpu6": 2802000,
                                                      "cpu7": 2802000}
    assert big_cores(pixel) == [6, 7]
    assert big_cores(pixel, at_least=4) == [4, 5, 6, 7]
    assert big_cores({0: 2000000, 1: 2000000, "2": 2000000}) == [0, 1, 2]  # one cluster: all of it
    assert big_cores({"cpu0": None, "cpu1": "n/a", "thermal": 5, "cpu2": True}) == []  # nothing readable


def test_single_warmup_run_and_logcat_prefixes():
    """`count=1 curr=…` (every run the same); logcat's threadtime and brief prefixes."""
    warm = next(line for line in XNN.splitlines() if line.startswith("INFO: count=27 "))
    text = XNN.replace(warm, "INFO: count=1 curr=24751 p5=24751 median=24751 p95=24751")
    assert _parse(text).extra["warmup_runs"] == 1
    summary = next(line for line in XNN.splitlines() if "Inference timings in us" in line)[len("INFO: "):]
    for prefix in ("12-06 15:04:05.123  4711  4711 I tflite  : ", "I/tflite  ( 4711): "):
        assert _parse(prefix + summary).latency_ms.mean == 17.9625


def test_subgraph_and_delegate_internal_tables_are_kept_apart():
    """profile_summary_formatter.cc prints per-subgraph headers and a 'Delegate internal:' part."""
    text = (DATA / "constructed_gpu_partial_op_profiling.txt").read_text()
    marker = "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:\n"
    run = text[text.index(marker) + len(marker):]
    text = (text.replace(marker, marker + "Primary graph (name: serving_default) profile:\n")
            + "Subgraph (index: 1, name: while_body) profile:\n" + run + "Delegate internal: \n" + run)
    result = _parse(text)
    tables = result.extra["op_profile_tables"]
    for graph in ("primary", "subgraph 1", "delegate"):
        assert len(tables[f"run/{graph}/Run Order"]) == 2, graph
    want = EXPECTED["constructed_gpu_partial_op_profiling.txt"][2]
    assert _rows(result.extra["op_profile"]) == _approx(want.op_profile)


@pytest.mark.parametrize("stderr, kind", [
    # bionic's linker: CANNOT LINK EXECUTABLE "%s": %s
    ('CANNOT LINK EXECUTABLE "/data/local/tmp/benchmark_model": library "libc++_shared.so" not found\n',
     "missing_library"),
    ("/system/bin/sh: /data/local/tmp/benchmark_model: not executable: 32-bit ELF file\n", "wrong_abi"),
])
def test_android_shell_and_linker_failures(stderr, kind):
    with pytest.raises(BenchmarkError, match=rf"failed \[{kind}\]: \"{stderr.strip()[:30]}"):
        _parse("", rc=1, stderr=stderr)


def test_a_build_that_ignores_the_delegate_flag_is_quoted():
    applied = next(line for line in XNN.splitlines() if line.startswith("INFO: Explicitly applied XNNPACK"))
    plain = XNN.replace(applied, "WARN: Unconsumed cmdline flags: --use_gpu=true")
    with pytest.raises(BenchmarkError,
                       match=r"gpu was asked for .* \(Unconsumed cmdline flags: --use_gpu=true\)"):
        parse_benchmark_model(plain, "", 0, name="m", precision="int8", device="x", expected_delegate="gpu")


def test_crlf_from_an_adb_pty_reads_the_same():
    assert _parse(XNN.replace("\n", "\r\n")).latency_ms == _parse(XNN).latency_ms


def test_builds_without_the_explicitly_applied_line_go_by_the_replaced_nodes():
    """Older builds name the delegate only in the runtime's `Replacing … with delegate (KERNEL)` line."""
    gpu = (DATA / "constructed_gpu_partial_op_profiling.txt").read_text()
    applied = next(line for line in gpu.splitlines() if line.startswith("INFO: Explicitly applied GPU"))
    assert _parse(gpu.replace(applied + "\n", "")).delegate == "gpu"
    applied = next(line for line in XNN.splitlines() if line.startswith("INFO: Explicitly applied XNNPACK"))
    implicit = XNN.replace(applied + "\n", "")
    assert _parse(implicit).delegate == "default"  # XNNPACK by the runtime itself: the default CPU path
    asked = parse_benchmark_model(implicit, "", 0, name="m", precision="int8", device="x",
                                  expected_delegate="xnnpack")
    assert asked.delegate == "xnnpack"
    nothing = XNN.replace(applied + "\n", "").replace(
        next(line for line in XNN.splitlines() if line.startswith("VERBOSE: Replacing")) + "\n", "")
    assert parse_benchmark_model(nothing, "", 0, name="m", precision="int8", device="x",
                                 expected_delegate="none").delegate == "none"


def test_a_platform_without_the_delegate_is_quoted():
    """gpu_delegate_provider.cc:206 warns `GPU acceleration is unsupported on this platform.` and goes on."""
    applied = next(line for line in XNN.splitlines() if line.startswith("INFO: Explicitly applied XNNPACK"))
    text = XNN.replace(applied, "WARN: GPU acceleration is unsupported on this platform.\n" + applied)
    with pytest.raises(BenchmarkError, match=r"gpu was asked for but the run was xnnpack's "
                                             r"\(GPU acceleration is unsupported on this platform\.\)"):
        parse_benchmark_model(text, "", 0, name="m", precision="int8", device="x", expected_delegate="gpu")


def test_nnapi_accelerators_are_kept():
    """nnapi_delegate_provider.cc:138 lists the phone's NNAPI accelerators."""
    param = next(line for line in XNN.splitlines() if line.startswith("INFO: Use xnnpack"))
    listed = "INFO: NNAPI accelerators available: [google-edgetpu,nnapi-reference]"
    text = XNN.replace(param, f"{param}\n{listed}")
    assert _parse(text).extra["nnapi_accelerators"] == ["google-edgetpu", "nnapi-reference"]


def test_the_compiled_model_profiler_keeps_op_names_with_spaces_and_drops_delegate_statistics():
    result = _run("constructed_compiled_model_profiler.txt")
    tables = result.extra["op_profile_tables"]
    assert sorted(tables) == ["run/primary/Run Order", "run/primary/Summary by node type",
                              "run/primary/Top by Computation Time"]
    assert tables["run/primary/Run Order"][1] == {
        "node_type": "Delegate/Convolution (NHWC, F32) IGEMM", "start_ms": 0.010, "first_ms": 1.211,
        "avg_ms": 1.102, "percent": 17.995, "cdf_percent": 90.007, "mem_kb": 0.0, "times_called": 289,
        "name": "[Delegate]:0"}
    text = (DATA / "constructed_compiled_model_profiler.txt").read_text()
    row = next(line for line in text.splitlines() if line.endswith("[Builtin]:63"))
    with pytest.raises(BenchmarkError, match="does not fit its 9 columns"):
        _parse(text.replace(row, row[:100]))


def test_op_profile_reader_stands_alone():
    """tfkit.bench.op_profile reads the tables without the rest of the parser: the README recording's
    per-type summary is the result's op_profile, row for row."""
    from tfkit.bench.op_profile import read_op_tables

    text = (DATA / "readme_op_profiling.txt").read_text()
    tables, layout = read_op_tables([(None, line.removeprefix("INFO: ")) for line in text.splitlines()])
    parsed = parse_benchmark_model(text, "", 0, name="m", precision="int8", device="adb")
    assert layout == "tflite" and tables["run/primary/Summary by node type"] == parsed.extra["op_profile"]
    assert parsed.extra["op_profile"] and all("node_type" in row for row in parsed.extra["op_profile"])
