"""benchmark() in rounds on the real runner (interleaving, runs split, cool-down, eval once, a
failing model, the fingerprint), and how rounds merge and throttling is judged, on real runner
output (tests/data/bench) with the readings changed where a test needs a throttled device."""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import pytest

from tests.unit.bench_tiny_models import write_clip_classifier, write_clips, write_stream_classifier
from tfkit.bench import BenchConfig, benchmark, merge_rounds, throttle_check
from tfkit.bench.devices.local import LocalDevice
from tfkit.bench.parse import last_json_object, parse_runner_output
from tfkit.errors import BenchmarkError, ToolNotFoundError

LOGS = Path(__file__).resolve().parents[1] / "data" / "bench"


def latency_stats(times_ms: list[float]) -> dict:
    """What the runner prints for these run times: nearest-rank percentiles, population std."""
    ordered = sorted(times_ms)

    def rank(p):
        return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "mean": statistics.fmean(ordered),
            "min": ordered[0], "max": ordered[-1], "std": statistics.pstdev(ordered), "runs": len(ordered),
            "method": "nearest-rank"}


class Recording(LocalDevice):
    """The real local device, noting each runner process it starts (what, when) and its result."""

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []

    def run(self, model_path, *, eval_npz=None, config=None, name=None, precision="unknown"):
        call = {"name": name, "runs": config.runs, "rounds": config.rounds, "eval": eval_npz is not None,
                "start": time.monotonic()}
        self.calls.append(call)
        try:
            call["result"] = super().run(model_path, eval_npz=eval_npz, config=config, name=name, precision=precision)
            return call["result"]
        finally:
            call["end"] = time.monotonic()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    bad = root / "bad.tflite"
    bad.write_bytes(b"TFL3 is not enough to be a model")
    return {"a": write_clip_classifier(root / "a.tflite"), "b": write_clip_classifier(root / "b.tflite"),
            "bad": bad, "clips": write_clips(root / "clips.npz"), "stream": write_stream_classifier(root / "s.tflite")}


def test_models_are_interleaved_in_rounds_with_a_cooldown(files):
    device = Recording()
    config = BenchConfig(runs=5, warmup=0, threads=1, rounds=2, cooldown_s=0.3, normalization="unit")
    results = benchmark([("a", "float32", files["a"]), ("b", "float32", files["b"])], device=device, config=config,
                        eval_npz=files["clips"], progress=False)
    # round 1: a, b (3 runs each, scored); round 2: a, b (2 runs each); every one a fresh runner
    assert [(c["name"], c["runs"], c["rounds"], c["eval"]) for c in device.calls] == [
        ("a", 3, 1, True), ("b", 3, 1, True), ("a", 2, 1, False), ("b", 2, 1, False)]
    gaps = [after["start"] - before["end"] for before, after in zip(device.calls, device.calls[1:])]
    assert min(gaps) >= 0.3, gaps
    for result in results:
        rounds = [c["result"] for c in device.calls if c["name"] == result.name]
        assert result.latency_ms.runs == 5 and result.accuracy == 1.0
        # The runner reports every time, so the merged percentiles are exact over all 5 runs.
        times = sorted(t for r in rounds for t in r.extra["latency_times_ms"])
        assert len(times) == 5 and result.latency_ms.p50 == times[2] and result.latency_ms.p99 == times[4]
        assert result.latency_ms.mean == pytest.approx(sum(r.latency_ms.mean * r.latency_ms.runs for r in rounds) / 5)
        assert result.peak_rss_mb == max(r.peak_rss_mb for r in rounds)
        assert [r["p50"] for r in result.extra["rounds"]] == [r.latency_ms.p50 for r in rounds]
        assert result.extra["percentile_method"] == "nearest-rank over all 5 runs of 2 rounds"
        assert (result.hygiene["rounds"], result.hygiene["cooldown_s"], result.hygiene["models_interleaved"]) == (2, 0.3, 2)
        assert len(result.hygiene["per_round"]) == 2 and result.hygiene["before"] == rounds[0].hygiene["before"]
        drift = abs(rounds[1].latency_ms.p50 - rounds[0].latency_ms.p50) / rounds[0].latency_ms.p50
        assert result.throttled is (drift > 0.10) and "from round 1" in result.throttle_reason
        assert (result.device, result.device_name) == ("local", None)
        assert result.fingerprint["cores"] >= 1 and result.fingerprint["runtimes"]["python_version"]


def test_a_failing_model_keeps_the_others_and_is_not_run_again(files):
    device = Recording()
    models = [("a", "float32", files["a"]), ("bad", "float32", files["bad"]), ("b", "float32", files["b"])]
    with pytest.raises(BenchmarkError) as error:
        benchmark(models, device=device, config=BenchConfig(runs=4, warmup=0, rounds=2), progress=False)
    message = str(error.value)
    assert message.startswith("1 of 3 models failed on local") and "round 1 of 2: bad (float32) on local" in message
    assert [r.name for r in error.value.results] == ["a", "b"]
    assert all(r.latency_ms.runs == 4 for r in error.value.results)
    assert [c["name"] for c in device.calls] == ["a", "bad", "b", "a", "b"]


class Unreadable(LocalDevice):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def fingerprint(self):
        raise self.error


@pytest.mark.parametrize("error, words", [
    (ToolNotFoundError("cannot run the device's python"), "cannot run the device's python"),
    (ValueError("plug-in bug"), "ValueError: plug-in bug"),
])
def test_a_fingerprint_that_cannot_be_read_is_recorded_not_fatal(files, error, words):
    (result,) = benchmark([("a", "float32", files["a"])], device=Unreadable(error),
                          config=BenchConfig(runs=2, warmup=0), progress=False)
    assert result.fingerprint == {"error": words} and result.latency_ms.runs == 2
    assert result.hygiene["rounds"] == 1


def test_stream_mode_over_rounds(files):
    """The runner streams the clips frame by frame (state fed back) in the first round, random frames
    in the second; frames and misses add up, accuracy comes from the scored round."""
    device = Recording()
    config = BenchConfig(runs=6, warmup=1, threads=1, rounds=2, stream=True, fps=1000.0)
    (result,) = benchmark([("s", "float32", files["stream"])], device=device, config=config,
                          eval_npz=files["clips"], progress=False)
    streams = [c["result"].stream for c in device.calls]
    assert streams[0]["clips"] == 6 and streams[1].get("accuracy") is None
    merged = result.stream
    assert merged["frames"] == sum(s["frames"] for s in streams) == merged["latency_ms"]["runs"]
    assert merged["missed_deadlines"] == sum(s["missed_deadlines"] for s in streams)
    assert (merged["accuracy"], merged["clips"], merged["fps"], merged["deadline_ms"]) == (1.0, 6, 1000.0, 1.0)
    times = sorted(t for s in streams for t in s["latency_ms"]["times_ms"])
    assert merged["latency_ms"]["p50"] == times[(len(times) + 1) // 2 - 1]  # nearest rank over every frame
    assert merged["latency_ms"]["max"] == max(s["latency_ms"]["max"] for s in streams)
    assert merged["latency_ms"]["method"] == f"nearest-rank over all {len(times)} frames of 2 rounds"


# --- merging and throttling, on the runner's own output -------------------------------------------


def round_result(times_ms=None, *, energy=None, max_freq=None, delegate=None, p50=None):
    """A real runner result (the x86 laptop tree's hygiene) with its timings set from `times_ms`
    (summarized as the runner does), and its readings changed as asked."""
    payload = last_json_object((LOGS / "runner2_x86_laptop_hygiene.stdout").read_text())
    if times_ms is not None:
        payload["latency_ms"] = latency_stats(times_ms)
    if p50 is not None:
        payload["latency_ms"].update(p50=p50, p90=max(p50, payload["latency_ms"]["p90"]),
                                     p99=max(p50, payload["latency_ms"]["p99"]))
    if energy is not None:
        payload.update(energy_mj_per_inference=energy, energy_source="rapl:package-0 /sys/class/powercap/intel-rapl:0")
    if max_freq is not None:
        payload["hygiene"]["after"] = {**payload["hygiene"]["after"], "max_freq_khz": max_freq}
    if delegate is not None:
        payload["delegate"] = delegate
    return parse_runner_output(json.dumps(payload), "", 0, name="tiny", precision="int8", device="local")


def test_merged_rounds_are_exact_where_the_summaries_allow():
    first, second = [1.0, 2.0, 3.0, 10.0], [4.0, 5.0]
    merged = merge_rounds([round_result(first, energy=0.3), round_result(second, energy=0.6)], cooldown_s=5)
    everything = first + second
    assert merged.latency_ms.runs == 6
    assert merged.latency_ms.mean == pytest.approx(statistics.fmean(everything))
    assert merged.extra["latency_std_ms"] == pytest.approx(statistics.pstdev(everything))
    assert (merged.extra["latency_min_ms"], merged.extra["latency_max_ms"]) == (1.0, 10.0)
    assert merged.energy_mj_per_inference == pytest.approx((0.3 * 4 + 0.6 * 2) / 6)  # total energy / inferences
    # percentiles: the median of the rounds' own nearest-rank values, and labelled as such
    assert merged.latency_ms.p50 == statistics.median([latency_stats(first)["p50"], latency_stats(second)["p50"]])
    assert "median over 2 rounds" in merged.extra["percentile_method"]
    assert merged.latency_ms.p50 <= merged.latency_ms.p90 <= merged.latency_ms.p99


def test_one_round_without_energy_keeps_the_reason():
    merged = merge_rounds([round_result([1.0, 2.0], energy=0.3), round_result([1.0, 2.0])])
    assert merged.energy_mj_per_inference is None
    assert merged.energy_source.startswith("unavailable: rapl:package-0") and "did not move" in merged.energy_source


def test_rounds_on_different_delegates_do_not_merge():
    with pytest.raises(BenchmarkError, match="different delegates \\(xnnpack, gpu\\)"):
        merge_rounds([round_result([1.0]), round_result([1.0], delegate="gpu")])


@pytest.mark.parametrize("rounds, throttled, words", [
    ([{"p50": 1.0}, {"p50": 1.05}], False, ["max frequency held on 2 CPUs over 4 readings", "p50 rose 5.0%"]),
    ([{"p50": 1.0}, {"p50": 1.2}], True, ["p50 rose 20.0% from round 1 (1 ms) to round 2 (1.2 ms)"]),
    ([{"p50": 1.0}, {"p50": 1.0}, {"p50": 0.85}], True, ["p50 fell 15.0%"]),
    ([{"p50": 1.0, "max_freq": {"cpu0": 4700000, "cpu1": 3900000}}, {"p50": 1.0}], True,
     ["cpu1 max frequency fell from 4700000 kHz (round 1 before) to 3900000 kHz (round 1 after)"]),
    ([{"p50": 1.0, "max_freq": {"cpu0": 4700000, "cpu1": 4700000}}], False, ["max frequency held on 2 CPUs over 2 readings"]),
])
def test_throttling_is_flagged_with_the_reason(rounds, throttled, words):
    results = [round_result(**r) for r in rounds]
    flag, reason = throttle_check(results)
    assert flag is throttled
    for word in words:
        assert word in reason
    merged = merge_rounds(results)
    assert (merged.throttled, merged.throttle_reason) == (flag, reason)


def test_throttling_cannot_be_judged_from_one_round_without_frequencies():
    payload = last_json_object((LOGS / "runner2_litert_int8.stdout").read_text())  # this container: no cpufreq
    result = parse_runner_output(json.dumps(payload), "", 0, name="tiny", precision="int8", device="local")
    flag, reason = throttle_check([result])
    assert flag is None and reason.startswith("not checked: one round and no CPU frequency readings")
    assert math.isfinite(merge_rounds([result]).latency_ms.p50)
