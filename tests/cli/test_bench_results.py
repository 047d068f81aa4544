"""`tfkit bench --out DIR` writes the result contract of issue 24 (device address + fingerprint,
runtime, delegate, latency, init, first inference, memory, energy with its source, hygiene,
throttling), a named device's delegate and CPU set apply, and `tfkit report` over two real bench
outputs gives a column per device. Every run is the real runner in a child process on tiny models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.bench_tiny_models import write_clip_classifier, write_stream_classifier
from tfkit.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
FAST = ("--runs", 4, "--warmup", 1, "--threads", 1)


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def results(folder: Path) -> list[dict]:
    return json.loads((folder / "results.json").read_text())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return [write_clip_classifier(root / "tiny_a.tflite"), write_clip_classifier(root / "tiny_b.tflite", (1, 4, 4, 3))]


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_every_result_carries_the_contract(models, tmp_path):
    ok(invoke("bench", *models, *FAST, "--rounds", 2, "--out", tmp_path / "b", "-q"))
    got = results(tmp_path / "b")
    assert [r["name"] for r in got] == ["tiny_a", "tiny_b"]
    for r in got:
        device = r["device"]
        assert set(device) >= {"address", "fingerprint"} and device["address"] == "local"
        assert isinstance(device["fingerprint"], dict) and device["fingerprint"]["cores"] == os.cpu_count()
        assert isinstance(r["runtime"], str) and r["runtime"].startswith("ai_edge_litert ")
        assert isinstance(r["delegate"], str) and r["delegate"]
        assert all(is_number(r["latency_ms"][p]) and r["latency_ms"][p] > 0 for p in ("p50", "p90", "p99"))
        assert r["latency_ms"]["runs"] == 4
        assert all(is_number(r[k]) and r[k] > 0 for k in ("init_ms", "first_inference_ms", "peak_rss_mb"))
        energy, source = r["energy_mj_per_inference"], r["energy_source"]
        assert isinstance(source, str) and source
        if energy is None:  # this host's answer: no readable counter, and why
            assert source.startswith("unavailable: ")
        else:
            assert is_number(energy) and energy >= 0 and not source.startswith("unavailable")
        hygiene = r["hygiene"]
        assert isinstance(hygiene["before"], dict) and isinstance(hygiene["after"], dict)
        assert {"governor", "freq_khz", "max_freq_khz", "thermal_c", "battery", "unavailable"} <= set(hygiene["before"])
        assert (hygiene["rounds"], len(hygiene["per_round"]), hygiene["models_interleaved"]) == (2, 2, 2)
        assert isinstance(r["throttled"], bool) and isinstance(r["throttle_reason"], str)  # two rounds: judged
        assert [x["runs"] for x in r["extra"]["rounds"]] == [2, 2]


def test_stream_mode_from_the_command_line(tmp_path):
    model = write_stream_classifier(tmp_path / "s.tflite")
    ok(invoke("bench", model, "--stream", "--fps", 500, "--runs", 6, "--warmup", 1, "--rounds", 2,
              "--out", tmp_path / "b", "-q"))
    (r,) = results(tmp_path / "b")
    stream = r["stream"]
    assert stream["frames"] == stream["latency_ms"]["runs"] > 0 and stream["deadline_ms"] == 2.0
    assert isinstance(stream["missed_deadlines"], int) and stream["accuracy"] is None  # random frames: no accuracy
    assert all(is_number(stream["latency_ms"][p]) for p in ("p50", "p90", "p99"))


def test_a_named_device_brings_its_delegate_and_cpu_set(models, tmp_path):
    config = tmp_path / "cfg" / "tfkit"
    config.mkdir(parents=True)
    first, last = min(os.sched_getaffinity(0)), max(os.sched_getaffinity(0))
    (config / "devices.yaml").write_text(f"devices:\n  pinned:\n    address: local\n    python: {sys.executable}\n"
                                         f"    delegate: none\n    cpu_affinity: \"{1 << last:x}\"\n")  # a taskset mask
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    ok(invoke("bench", models[0], *FAST, "--rounds", 1, "--device", "pinned", "--out", tmp_path / "named", "-q", env=env))
    (named,) = results(tmp_path / "named")
    assert (named["delegate"], named["extra"]["cpu_affinity"]) == ("none", [last])
    assert named["device"]["name"] == "pinned" and named["device"]["address"] == "local"
    assert named["extra"]["delegate_detail"]["requested"] == "none"
    # the command line wins over the entry
    ok(invoke("bench", models[0], *FAST, "--rounds", 1, "--device", "pinned", "--delegate", "default",
              "--cpu-affinity", first, "--out", tmp_path / "given", "-q", env=env))
    (given,) = results(tmp_path / "given")
    assert given["extra"]["delegate_detail"]["requested"] == "default" and given["extra"]["cpu_affinity"] == [first]


def test_bad_bench_options_are_one_error_line(models, tmp_path):
    for args, words in ((("--fps", 30), "error: fps sets stream mode's frame deadline; it needs --stream"),
                        (("--cpu-affinity", "f0"), "error: cpu_affinity is 'f0'; give core ids such as"),
                        (("--delegate", "coreml"), "Invalid value for '--delegate'"),
                        (("--cooldown", -1), "error: cooldown must be a number of seconds >= 0"),
                        (("--rounds", 0), "error: rounds must be an integer >= 1")):
        r = invoke("bench", models[0], *args, "--out", tmp_path / "x")
        assert r.exit_code == 2 and "Traceback" not in r.output, (args, r.output)
        assert words in r.stderr, (args, r.stderr)
    assert not (tmp_path / "x").exists()


def other_python() -> str:
    """A second interpreter for a second device: the tflite-runtime 2.14 venv when this checkout has
    one (.ci/run makes it), else this python under another name (still a separate bench run)."""
    for python in (os.environ.get("TFKIT_TFLITE_RUNTIME_PYTHON"), REPO / ".venv-tflite-runtime" / "bin" / "python"):
        if python and Path(python).is_file() and subprocess.run(
                [str(python), "-c", "import tflite_runtime"], capture_output=True, check=False).returncode == 0:
            return str(python)
    return sys.executable


def test_report_over_two_devices_has_a_column_each(models, tmp_path):
    python = other_python()
    config = tmp_path / "cfg" / "tfkit"
    config.mkdir(parents=True)
    (config / "devices.yaml").write_text(f"devices:\n  oldrt:\n    address: local\n    python: {python}\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    ok(invoke("bench", *models, *FAST, "--rounds", 2, "--out", tmp_path / "here", "-q"))
    ok(invoke("bench", models[0], *FAST, "--rounds", 2, "--device", "oldrt", "--out", tmp_path / "there", "-q", env=env))
    ok(invoke("report", tmp_path / "here", tmp_path / "there", "--out", tmp_path / "r", "-q"))
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    labels = [d["label"] for d in doc["devices"]]
    assert labels == ["local", "oldrt"]
    here, there = doc["devices"]
    assert here["fingerprint"]["runtimes"]["python"] != there["fingerprint"]["runtimes"]["python"] or python == sys.executable
    if python != sys.executable:
        assert there["runtime"].startswith("tflite_runtime 2.14") and there["fingerprint"]["runtimes"]["tflite_runtime"]
    for device in doc["devices"]:
        assert device["summary"]["cores"] == str(os.cpu_count()) and device["summary"]["kernel / API"].startswith("Linux")
        assert device["energy_source"]  # a counter, or "unavailable: why"
    assert [(a["name"], a["device_label"]) for a in doc["artifacts"]] == [
        ("tiny_a", "local"), ("tiny_b", "local"), ("tiny_a", "oldrt")]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Devices" in md and "|  | local | oldrt |" in md and "| energy source |" in md
    assert "p50 ms · local" in md and "p50 ms · oldrt" in md
    row_b = next(line for line in md.splitlines() if line.startswith("| tiny_b |"))
    assert row_b.count("not run") == 6  # tiny_b ran on one device only
    assert "<h2>Devices</h2>" in (tmp_path / "r" / "report.html").read_text()
    # one bench folder: today's single-device table, with the delegate and energy columns
    ok(invoke("report", tmp_path / "here", "--out", tmp_path / "r1", "-q"))
    single = (tmp_path / "r1" / "report.md").read_text()
    assert "## Devices" not in single and "| delegate | energy mJ | throttled |" in single
    assert "- Device local: CPU / board" in single and "- Energy: " in single
