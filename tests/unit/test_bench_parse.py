"""parse_runner_output on saved runner logs (tests/data/bench) and on hostile variants of them."""
from __future__ import annotations

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
