"""write_report: the four files, the JSON contract, escaping of user text, the plot's edge cases."""
from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import struct

import pytest

from tfkit.errors import UsageError
from tfkit.report import ReportPaths, write_report
from tfkit.report.table import ARTIFACT_KEYS
from tfkit.types import BenchResult, LatencyStats

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def result(name="tsm", precision="int8", accuracy=0.8125, p50=0.47, size=45_592, rss=52.5, extra=None) -> BenchResult:
    return BenchResult(
        name=name, precision=precision, size_bytes=size,
        latency_ms=LatencyStats(p50=p50, p90=p50 * 1.2, p99=p50 * 1.5, mean=p50 * 1.05, runs=50),
        init_ms=1.9, first_inference_ms=0.8, peak_rss_mb=rss, threads=2, runtime="ai_edge_litert 2.3.0",
        accuracy=accuracy, device="local", extra=extra or {},
    )


RANDOM_PARITY = {"precision": "int8", "clips": 64, "max_abs_logit_diff": 0.31, "top1_agreement": 0.984,
                 "threshold": "top-1 agreement 0.984 >= 0.95", "passed": True, "inputs": "random"}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_files_and_json_contract(tmp_path):
    results = [result(), result(name="tsm", precision="float32", accuracy=0.84, p50=0.36, size=77_184)]
    paths = write_report(results, tmp_path / "rep", title="TSM", notes={"clips": 200, "dataset": "synthetic"})
    assert isinstance(paths, ReportPaths)
    for path in (paths.json, paths.markdown, paths.html, paths.plot):
        assert path.parent == tmp_path / "rep" and path.stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "latency_accuracy.png", "report.html", "report.json", "report.md"]  # no temp files left
    document = json.loads(paths.json.read_text())
    assert set(document) == {"title", "created", "notes", "devices", "artifacts"}
    assert document["title"] == "TSM" and document["notes"] == {"clips": 200, "dataset": "synthetic"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", document["created"])
    first = document["artifacts"][0]
    assert tuple(first) == ARTIFACT_KEYS == (
        "name", "precision", "size_bytes", "accuracy", "latency_ms", "init_ms", "first_inference_ms",
        "peak_rss_mb", "threads", "runtime", "device", "inputs", "parity", "delegate", "energy_mj_per_inference",
        "energy_source", "throttled", "throttle_reason", "device_label")
    assert first["latency_ms"] == {"p50": 0.47, "p90": pytest.approx(0.564), "p99": pytest.approx(0.705),
                                   "mean": pytest.approx(0.4935)}
    assert (first["size_bytes"], first["accuracy"], first["threads"]) == (45_592, 0.8125, 2)
    assert (first["inputs"], first["parity"]) == ("real clips", None)  # derived: a result saved before they were recorded

    width, height = png_size(paths.plot.read_bytes())
    assert width > 300 and height > 200


def test_markdown_table_has_every_artifact_and_column(tmp_path):
    paths = write_report([result(), result(precision="float32", accuracy=None)], tmp_path, notes={"seed": 1})
    md = paths.markdown.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| name"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "name", "precision", "size KB", "accuracy %", "p50 ms", "p90 ms", "p99 ms", "init ms", "first ms",
        "peak RSS MB", "inputs", "parity", "delegate", "energy mJ", "throttled"]
    assert ("| tsm | int8 | 44.5 | 81.2 | 0.470 | 0.564 | 0.705 | 1.900 | 0.800 | 52.5 | real clips | n/a | default "
            "| n/a | not checked |") in md
    assert "| tsm | float32 | 44.5 | n/a |" in md and md.count("| random | n/a |") == 1
    assert "- Energy: unavailable: not recorded." in md  # results without energy say so, never a guess
    assert "![" in md and "](latency_accuracy.png)" in md and "- **seed**: 1" in md


def test_user_text_is_escaped(tmp_path):
    evil = "<script>alert('x')</script>"
    paths = write_report([result(name=evil), result(name="a|b $x$ & c")], tmp_path, title="<b>t</b>",
                         notes={"<i>key</i>": "<img src=x onerror=alert(1)>"})
    page = paths.html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>t</b>" not in page and "<img src=x" not in page and "<i>key</i>" not in page
    md = paths.markdown.read_text()
    # Markdown's own backslash escapes, not HTML entities: no tag can open, the text reads as typed.
    assert not re.search(r"(?<!\\)<[A-Za-z/]", md) and "\\<script>alert('x')\\</script>" in md
    assert "a\\|b $x$ & c" in md and "&amp;" not in md and "\\<img src=x onerror=alert(1)>" in md
    assert json.loads(paths.json.read_text())["artifacts"][0]["name"] == evil  # data stays as given


def test_report_says_which_inputs_fed_each_number(tmp_path):
    """A random-input parity check must not read as an accuracy check, in every format; the
    Markdown keeps ">=" as typed (only HTML escapes it)."""
    third_party = result(name="their_model", precision="unknown", accuracy=None,
                         extra={"input_source": "random", "parity": None})
    converted = result(accuracy=None, extra={"input_source": "random", "parity": RANDOM_PARITY})
    scored = result(precision="float32", accuracy=0.9,
                    extra={"input_source": "real clips", "parity": {**RANDOM_PARITY, "inputs": "real clips"}})
    paths = write_report([third_party, converted, scored], tmp_path, notes={"parity int8": "top-1 agreement 0.984 >= 0.95"})
    rows = json.loads(paths.json.read_text())["artifacts"]
    assert [r["inputs"] for r in rows] == ["random", "random", "real clips"]
    assert rows[0]["parity"] is None and rows[1]["parity"]["inputs"] == "random"
    assert rows[1]["parity"]["top1_agreement"] == 0.984 and rows[2]["parity"]["inputs"] == "real clips"
    md = paths.markdown.read_text()
    assert "| their_model | unknown |" in md and "| random | n/a |" in md
    assert "| random | top-1 agreement 0.984 >= 0.95 on 64 random inputs |" in md
    assert "| real clips | top-1 agreement 0.984 >= 0.95 on 64 real clips |" in md
    assert "&gt;" not in md and "- **parity int8**: top-1 agreement 0.984 >= 0.95" in md
    page = paths.html.read_text()
    assert "top-1 agreement 0.984 &gt;= 0.95 on 64 random inputs</td>" in page and ">= 0.95" not in page
    assert "<td>random</td>" in page and "<td>real clips</td>" in page


def test_html_is_self_contained_with_the_same_png(tmp_path):
    paths = write_report([result()], tmp_path)
    page = paths.html.read_text()
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1)) == paths.plot.read_bytes()
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # no external file or URL


@pytest.mark.parametrize(
    "results",
    [
        [result()],
        [result(accuracy=None)],
        [result(accuracy=None), result(name="b", accuracy=None, p50=2.0)],
        [result(accuracy=None), result(name="b", precision="qat-int8", accuracy=0.5, p50=2.0)],
        [result(accuracy=1.0, rss=math.nan), result(name="c", accuracy=0.0, size=0)],
    ],
    ids=["one", "one-no-accuracy", "none-measured", "mixed", "extremes"],
)
def test_edge_cases_render(tmp_path, results):
    paths = write_report(results, tmp_path)
    png_size(paths.plot.read_bytes())
    document = json.loads(paths.json.read_text())  # strict JSON: NaN must have become null
    assert len(document["artifacts"]) == len(results)
    if any(math.isnan(r.peak_rss_mb) for r in results):
        assert document["artifacts"][0]["peak_rss_mb"] is None


def test_rewriting_replaces_and_empty_input_is_refused(tmp_path):
    write_report([result(name="old")], tmp_path)
    paths = write_report([result(name="new")], tmp_path)
    assert "new" in paths.markdown.read_text() and "old" not in paths.markdown.read_text()
    with pytest.raises(UsageError, match="no benchmark results"):
        write_report([], tmp_path)
    with pytest.raises(UsageError, match="BenchResult"):
        write_report([{"name": "x"}], tmp_path)


PI_FINGERPRINT = {"board": "Raspberry Pi 5 Model B Rev 1.0", "cpu_model": None, "soc": "BCM2712", "cores": 4,
                  "abi": "aarch64", "os": "Linux", "kernel": "6.6.31+rpt-rpi-2712", "android_api": None,
                  "max_mhz": [2400], "governors": ["ondemand"], "runtimes": {"tflite_runtime": "2.14.0"}}
HOST_FINGERPRINT = {"cpu_model": "Intel(R) Xeon(R) Processor", "board": None, "cores": 2, "abi": "x86_64",
                    "os": "Linux", "kernel": "6.18.44", "max_mhz": [], "governors": []}


def on(device, name=None, fingerprint=None, energy=None, source="unavailable: no RAPL zones", run=None, **kw):
    r = result(**kw)
    extra = {**r.extra, **({"bench_run": run} if run else {})}
    return dataclasses.replace(r, device=device, device_name=name, fingerprint=fingerprint, extra=extra,
                               energy_mj_per_inference=energy, energy_source=source)


def test_results_from_several_devices_get_a_column_each(tmp_path):
    results = [on("local", fingerprint=HOST_FINGERPRINT, energy=0.8, source="rapl:package-0 /sys/class/powercap"),
               on("local", fingerprint=HOST_FINGERPRINT, precision="float32", p50=0.36),
               on("ssh:pi@pi5", "pi5", PI_FINGERPRINT, p50=2.5, accuracy=0.75)]
    paths = write_report(results, tmp_path)
    doc = json.loads(paths.json.read_text())
    assert [d["label"] for d in doc["devices"]] == ["local", "pi5"]
    pi = doc["devices"][1]
    assert (pi["address"], pi["name"], pi["fingerprint"]["soc"]) == ("ssh:pi@pi5", "pi5", "BCM2712")
    assert pi["summary"] == {"CPU / board": "Raspberry Pi 5 Model B Rev 1.0", "cores": "4",
                             "kernel / API": "Linux 6.6.31+rpt-rpi-2712, aarch64", "max MHz": "2400",
                             "governor": "ondemand"}
    assert doc["devices"][0]["energy_source"] == "rapl:package-0 /sys/class/powercap, unavailable: no RAPL zones"
    assert [a["device_label"] for a in doc["artifacts"]] == ["local", "local", "pi5"]
    assert doc["artifacts"][0]["energy_mj_per_inference"] == 0.8 and doc["artifacts"][2]["energy_mj_per_inference"] is None
    md = paths.markdown.read_text()
    assert "## Devices" in md and "|  | local | pi5 |" in md
    assert "| CPU / board | Intel(R) Xeon(R) Processor | Raspberry Pi 5 Model B Rev 1.0 |" in md
    assert "| kernel / API | Linux 6.18.44, x86_64 | Linux 6.6.31+rpt-rpi-2712, aarch64 |" in md
    header = next(line for line in md.splitlines() if line.startswith("| name"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "name", "precision", "size KB",
        *(f"{m} · {d}" for d in ("local", "pi5")
          for m in ("accuracy %", "p50 ms", "p90 ms", "init ms", "peak RSS MB", "energy mJ"))]
    # one row per model; a model a device did not run says so
    assert "| tsm | int8 | 44.5 | 81.2 | 0.470 | 0.564 | 1.900 | 52.5 | 0.8 | 75.0 | 2.500 | 3.000 | 1.900 | 52.5 | n/a |" in md
    assert "| tsm | float32 | 44.5 | 81.2 | 0.360 |" in md and md.count("not run") == 6
    page = paths.html.read_text()
    assert "<h2>Devices</h2>" in page and "<th>pi5</th>" in page and "p50 ms · pi5</th>" in page


def test_the_same_device_twice_is_two_columns_and_labels_never_repeat(tmp_path):
    runs = [on("local", fingerprint=HOST_FINGERPRINT, run="/o/run-a"),
            on("local", fingerprint=HOST_FINGERPRINT, run="/o/run-b", p50=0.5),
            on("local", fingerprint=HOST_FINGERPRINT, run="/o/run-c", p50=0.6)]
    runs[2] = dataclasses.replace(runs[2], runtime="tflite_runtime 2.14.0")
    doc = json.loads(write_report(runs, tmp_path).json.read_text())
    assert [d["label"] for d in doc["devices"]] == ["local · ai_edge_litert 2.3.0 · run-a",
                                                    "local · ai_edge_litert 2.3.0 · run-b",
                                                    "local · tflite_runtime 2.14.0"]


@pytest.mark.parametrize("fingerprint, cpu", [
    (None, "not recorded"),
    ({"error": "ssh: connect to host pi5 port 22: Connection refused"}, "fingerprint failed: ssh: connect"),
    ({"cores": "many", "max_mhz": "fast", "governors": None, "thermal": 3, "kernel": ["x"]}, "unknown CPU"),
    ({"android_api": 34, "soc": "SM8550", "abi": "arm64-v8a", "cores": 8}, "SM8550"),
])
def test_any_fingerprint_shape_renders(tmp_path, fingerprint, cpu):
    paths = write_report([on("adb:R58M", fingerprint=fingerprint), on("local", fingerprint=HOST_FINGERPRINT)], tmp_path)
    summary = json.loads(paths.json.read_text())["devices"][0]["summary"]
    assert summary["CPU / board"].startswith(cpu)
    if fingerprint and fingerprint.get("android_api"):
        assert summary["kernel / API"] == "Android API 34, arm64-v8a"


def test_one_device_names_its_fingerprint_energy_and_throttling(tmp_path):
    flagged = dataclasses.replace(on("local", fingerprint=HOST_FINGERPRINT, energy=1.25, source="rapl:package-0 x"),
                                  throttled=True, throttle_reason="p50 rose 14.0% from round 1 to round 3")
    md = write_report([flagged], tmp_path).markdown.read_text()
    assert "- Device local: CPU / board Intel(R) Xeon(R) Processor; cores 2; kernel / API Linux 6.18.44, x86_64" in md
    assert "- Energy: rapl:package-0 x." in md and "| default | 1.25 | yes |" in md
    assert "- Throttled: tsm (int8): p50 rose 14.0% from round 1 to round 3." in md
