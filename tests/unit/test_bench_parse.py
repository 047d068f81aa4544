"""parse_runner_output on saved runner logs (tests/data/bench) and on hostile variants of them."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from tfkit.bench.parse import last_json_object, parse_runner_output
from tfkit.errors import BenchmarkError
from tfkit.types import BenchResult, Precision

LOGS = Path(__file__).resolve().parents[1] / "data" / "bench"


def log(case: str) -> tuple[str, str]:
    stderr = LOGS / f"{case}.stderr"
    return (LOGS / f"{case}.stdout").read_text(), stderr.read_text() if stderr.exists() else ""


def parse(stdout: str, stderr: str = "", returncode: int = 0, precision="int8") -> BenchResult:
    return parse_runner_output(stdout, stderr, returncode, name="tiny", precision=precision, device="board")


# case -> (exit code the runner had, accuracy it reported, runtime)
SUCCESSES = {
    "litert_float32_eval": (0, 2 / 6, "ai_edge_litert 2.3.0"),
    "litert_int8": (0, None, "ai_edge_litert 2.3.0"),
    "tflite_runtime_int8_eval": (0, 2 / 6, "tflite_runtime 2.14.0"),
    "noise_then_result": (0, 2 / 6, "ai_edge_litert 2.3.0"),
}


@pytest.mark.parametrize("case", sorted(SUCCESSES))
def test_saved_successes_parse(case):
    returncode, accuracy, runtime = SUCCESSES[case]
    stdout, stderr = log(case)
    result = parse(stdout, stderr, returncode, precision=Precision.INT8)
    payload = last_json_object(stdout)
    assert result.name == "tiny" and result.precision == "int8" and result.device == "board"
    assert result.runtime == runtime
    assert result.size_bytes == payload["model_size_bytes"] > 0
    assert result.latency_ms.p50 == payload["latency_ms"]["p50"]
    assert result.latency_ms.p50 <= result.latency_ms.p90 <= result.latency_ms.p99
    assert result.latency_ms.runs == 20
    assert result.init_ms > 0 and result.first_inference_ms > 0 and result.peak_rss_mb > 0
    assert result.accuracy == (pytest.approx(accuracy) if accuracy is not None else None)
    assert result.extra["percentile_method"] == "nearest-rank"


# case -> (exit code, words the error must carry)
FAILURES = {
    "litert_not_flatbuffer": (1, ["[load]", "The model is not a valid Flatbuffer buffer", "b'TFL3'"]),
    "tflite_runtime_numpy2": (1, ["[load]", "numpy.core.multiarray failed to import", "pip install 'numpy<2'",
                                  "_ARRAY_API not found"]),
    "litert_eval_multi_input": (1, ["[eval_unsupported]", "this one has 2 inputs", "benchmark without eval_npz"]),
    "garbage_truncated": (-9, ["printed no JSON result", "killed by SIGKILL", "out-of-memory", "Killed"]),
    "garbage_nan": (0, ["printed no JSON result", "XNNPACK"]),
    "garbage_binary": (-11, ["printed no JSON result", "SIGSEGV", "Segmentation fault"]),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_saved_failures_raise_with_the_devices_words(case):
    returncode, words = FAILURES[case]
    stdout, stderr = log(case)
    with pytest.raises(BenchmarkError) as error:
        parse(stdout, stderr, returncode)
    message = str(error.value)
    assert message.startswith("tiny (int8) on board")
    for word in words:
        assert word in message
    assert message.count("The model is not a valid Flatbuffer buffer") <= 1  # runner's log line not repeated


def good_payload() -> dict:
    return last_json_object(log("litert_float32_eval")[0])


def with_change(path: str, value) -> str:
    payload = good_payload()
    *parents, leaf = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return json.dumps(payload)


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("latency_ms.p50", KeyError, "'latency_ms.p50' is missing"),
        ("latency_ms", "fast", "'latency_ms.p50' is missing"),
        ("latency_ms.p90", "12", "not a finite number"),
        ("latency_ms.p99", 1e-9, "not ordered"),
        ("init_ms", -1.0, "below 0"),
        ("threads", True, "not an integer"),
        ("threads", 0, "not an integer >= 1"),
        ("model_size_bytes", 1.5, "not an integer"),
        ("eval.accuracy", 3.0, "above 1"),
        ("schema", "tfkit.runner/0", "runner version mismatch"),
        ("runtime", KeyError, "'runtime' is missing"),
    ],
)
def test_untrusted_fields_are_checked(path, value, words):
    with pytest.raises(BenchmarkError, match="not usable") as error:
        parse(with_change(path, value))
    assert words in str(error.value)


def test_result_followed_by_a_crash_is_not_trusted():
    stdout, stderr = log("litert_int8")
    with pytest.raises(BenchmarkError, match="printed a result but then killed by SIGSEGV"):
        parse(stdout, stderr, -11)


def test_error_object_wins_even_with_exit_code_zero():
    with pytest.raises(BenchmarkError, match=r"\[invoke\]: boom"):
        parse('{"error": "boom", "kind": "invoke"}', "", 0)


def test_unknown_peak_rss_becomes_nan():
    assert math.isnan(parse(with_change("peak_rss_mb", None)).peak_rss_mb)


@pytest.mark.parametrize("stdout", ["", "\n\n", "[1, 2]", "{not json}", '{"a": NaN}', "null"])
def test_no_object_means_no_result(stdout):
    assert last_json_object(stdout) is None
    with pytest.raises(BenchmarkError, match="no JSON result"):
        parse(stdout, "", 1)


def test_last_object_line_is_the_result():
    assert last_json_object('{"a": 1}\nnoise\n{"b": 2}\n  \n') == {"b": 2}


# --- tfkit.runner/2: delegate, energy, hygiene, stream ---------------------------------------------

# case -> (runtime, energy is a number, whether the snapshots hold CPU max frequencies)
SCHEMA2 = {
    "runner2_litert_int8": ("ai_edge_litert 2.3.0", False, False),
    "runner2_tflite_runtime_float32": ("tflite_runtime 2.14.0", False, False),
    "runner2_pi4_ina219_energy": ("ai_edge_litert 2.3.0", True, True),
    "runner2_x86_laptop_hygiene": ("ai_edge_litert 2.3.0", False, True),
}


@pytest.mark.parametrize("case", sorted(SCHEMA2))
def test_schema2_outputs_parse_with_their_new_fields(case):
    runtime, has_energy, has_freqs = SCHEMA2[case]
    stdout, stderr = log(case)
    payload = last_json_object(stdout)
    assert payload["schema"] == "tfkit.runner/2"
    result = parse(stdout, stderr)
    assert result.runtime == runtime and result.latency_ms.runs == 20
    assert result.delegate == payload["delegate"] and isinstance(result.delegate, str)
    assert result.extra["delegate_detail"]["requested"] == "default"
    assert result.energy_source == payload["energy_source"]
    if has_energy:
        assert result.energy_mj_per_inference == payload["energy_mj_per_inference"] >= 0
        assert result.energy_source.startswith("hwmon:ina219")
    else:
        assert result.energy_mj_per_inference is None and result.energy_source.startswith("unavailable: ")
    assert set(result.hygiene) == {"before", "after"}
    assert bool(result.hygiene["before"]["max_freq_khz"]) == has_freqs
    assert result.stream is None and result.throttled is None  # throttling is judged over rounds, by benchmark()


def test_schema1_outputs_take_the_new_defaults():
    result = parse(*log("litert_int8"))
    assert (result.delegate, result.energy_mj_per_inference, result.hygiene, result.stream) == ("default", None, {}, None)
    assert result.energy_source == ("unavailable: the runner on the device is tfkit.runner/1, which does not read "
                                    "energy counters")


def schema2_with(path: str, value) -> str:
    payload = last_json_object(log("runner2_x86_laptop_hygiene")[0])
    *parents, leaf = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return json.dumps(payload)


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("energy_mj_per_inference", -0.5, "'energy_mj_per_inference' is -0.5, below 0"),
        ("energy_mj_per_inference", "1.2", "not a finite number"),
        ("energy_mj_per_inference", KeyError, "'energy_mj_per_inference' is missing"),
        ("energy_source", None, "'energy_source' is None, not a non-empty string"),
        ("delegate", 3, "'delegate' is 3, not a non-empty string"),
        ("delegate", ["gpu"], "not a non-empty string"),
        ("delegate", KeyError, "'delegate' is missing"),
        ("delegate_detail", "gpu", "'delegate_detail' is 'gpu', not an object"),
        ("cpu_affinity", [0, -1], "not a list of core ids"),
        ("hygiene", [], "'hygiene' is [], not an object"),
        ("hygiene.after", KeyError, "'hygiene.after' is missing"),
        ("hygiene.before.max_freq_khz", [1], "not an object"),
        ("hygiene.before.max_freq_khz.cpu0", "fast", "'hygiene.before.max_freq_khz.cpu0' is 'fast', not a finite number"),
        ("hygiene.after.freq_khz.cpu1", -5, "below 0"),
        ("hygiene.after.thermal_c", {"soc-thermal.0 (cpu)": "hot"}, "'hygiene.after.thermal_c.soc-thermal.0 (cpu)' is 'hot'"),
        ("stream", {"frames": 0, "latency_ms": {}}, "'frames' is 0"),
        ("stream", {"frames": 3, "latency_ms": {"p50": 2.0, "p90": 1.0, "p99": 3.0}}, "stream latency percentiles"),
        ("stream", {"frames": 3, "latency_ms": {"p50": 1, "p90": 1, "p99": 1}, "accuracy": 2}, "stream accuracy 2"),
        ("latency_ms.times_ms", [0.1, 0.2], "latency times_ms is not a list of"),
        ("latency_ms.times_ms", "fast", "latency times_ms is not a list of"),
        ("stream", {"frames": 1, "latency_ms": {"p50": 1, "p90": 1, "p99": 1, "runs": 1, "times_ms": [-1.0]}},
         "stream latency times_ms[0]"),
    ],
)
def test_untrusted_schema2_fields_are_checked(path, value, words):
    with pytest.raises(BenchmarkError, match="not usable") as error:
        parse(schema2_with(path, value))
    assert words in str(error.value)


def test_energy_and_its_source_must_agree():
    with pytest.raises(BenchmarkError, match="energy_mj_per_inference is 0.2 but energy_source says 'unavailable"):
        parse(schema2_with("energy_mj_per_inference", 0.2))
    # A null reading always reads as unavailable, keeping the device's own words.
    payload = json.loads(schema2_with("energy_source", "counter stuck"))
    assert parse(json.dumps(payload)).energy_source == "unavailable: counter stuck"


def test_a_stream_result_is_kept():
    stream = {"frames": 24, "latency_ms": {"p50": 0.2, "p90": 0.3, "p99": 0.4, "mean": 0.25, "runs": 24},
              "fps": 15.0, "deadline_ms": 66.7, "missed_deadlines": 0, "clips": 3, "accuracy": 2 / 3,
              "requantized_states": ["s0_in"]}
    assert parse(schema2_with("stream", stream)).stream == stream


@pytest.mark.parametrize("case, kind, words", [
    ("runner2_delegate_gpu_fails", "delegate", ["libtensorflowlite_gpu_delegate.so", "never replaced by the CPU"]),
    ("runner2_stream_no_state", "stream_unsupported", ["no state inputs pair with outputs", "convert the streaming form"]),
])
def test_schema2_failures_name_the_kind_and_what_to_do(case, kind, words):
    with pytest.raises(BenchmarkError, match=rf"\[{kind}\]") as error:
        parse(*log(case), returncode=1)
    for word in words:
        assert word in str(error.value)


def test_results_round_trip_and_old_results_files_load():
    result = parse(*log("runner2_pi4_ina219_energy"))
    result = dataclasses.replace(result, device="ssh:pi@board", device_name="pi5", fingerprint={"cores": 4},
                                 throttled=False, throttle_reason="p50 rose 1.0% from round 1 to round 3")
    d = json.loads(json.dumps(result.to_dict()))
    assert d["device"] == {"address": "ssh:pi@board", "name": "pi5", "fingerprint": {"cores": 4}}
    assert "fingerprint" not in d and "device_name" not in d
    assert BenchResult.from_dict(d) == result
    # A results.json written before devices had fingerprints: device is the address string.
    old = {k: v for k, v in d.items() if k in ("name", "precision", "size_bytes", "latency_ms", "init_ms",
                                                 "first_inference_ms", "peak_rss_mb", "threads", "runtime",
                                                 "accuracy", "extra")}
    loaded = BenchResult.from_dict({**old, "device": "local"})
    assert (loaded.device, loaded.device_name, loaded.fingerprint, loaded.delegate) == ("local", None, None, "default")
    assert (loaded.energy_mj_per_inference, loaded.throttled, loaded.hygiene) == (None, None, {})
    assert loaded.energy_source.startswith("unavailable")
