"""android_demo/core (pure Kotlin) compiled with kotlinc-jvm and its JUnit tests run on this JVM,
against golden files regenerated here from the tfkit under test (tools/write_android_goldens.py), so
a change in tfkit's metadata, preprocessing or stream arithmetic fails the Kotlin side.

Tools: Kotlin from the npm package `kotlin-compiler` (its kotlinc-jvm and kotlin-stdlib.jar), JUnit 4
and hamcrest from Debian's `junit4`, Java 17; .ci/run installs them. With CI=true a missing tool fails
these tests; otherwise they skip, naming what to install. The app module needs the Android SDK and is
not compiled here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "android_demo"
JUNIT_JARS = (Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar"))
INSTALL = "npm install -g kotlin-compiler@2.4.20 && apt-get install -y junit4 openjdk-17-jdk-headless python3-imageio"
VIDEOS = Path("/usr/lib/python3/dist-packages/imageio/resources/images")
CLASSES = ("GoldenTest", "BadInputTest", "CoreTest", "ReportTest", "RecognizerTest")


def _missing(what: str):
    message = f"{what}; install with: {INSTALL}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def _kotlinc() -> Path | None:
    """kotlinc-jvm: $KOTLINC_JVM, on PATH, or inside npm's global kotlin-compiler (npm links only kotlinc-js)."""
    candidates = [os.environ.get("KOTLINC_JVM"), shutil.which("kotlinc-jvm")]
    npm = shutil.which("npm")
    if npm:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60, check=False).stdout.strip()
        candidates.append(f"{root}/kotlin-compiler/bin/kotlinc-jvm")
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="session")
def tools() -> dict:
    kotlinc = _kotlinc()
    if kotlinc is None:
        _missing("kotlinc-jvm (npm package kotlin-compiler) is not installed")
    stdlib = kotlinc.resolve().parent.parent / "lib" / "kotlin-stdlib.jar"
    if not stdlib.is_file():
        _missing(f"{stdlib} is missing beside {kotlinc}")
    if not all(j.is_file() for j in JUNIT_JARS):
        _missing(f"JUnit 4 / hamcrest ({', '.join(map(str, JUNIT_JARS))}) are not installed")
    java = shutil.which("java")
    if java is None:
        _missing("java is not on PATH")
    return {"kotlinc": kotlinc, "stdlib": stdlib, "java": java}


@pytest.fixture(scope="session")
def goldens(tmp_path_factory) -> Path:
    if not all((VIDEOS / name).is_file() for name in ("cockatoo.mp4", "realshort.mp4")):
        _missing(f"imageio's sample videos (cockatoo.mp4, realshort.mp4 in {VIDEOS}) are not installed")
    out = tmp_path_factory.mktemp("android_golden")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "write_android_goldens.py"), str(out)],
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, f"write_android_goldens failed:\n{run.stderr[-3000:]}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["frames"] >= 100 and summary["steps"] >= 300, summary
    return out


@pytest.fixture(scope="session")
def compiled(tools, tmp_path_factory) -> Path:
    """core's main and test sources compiled once per session (the JVM compiler is the slow part)."""
    out = tmp_path_factory.mktemp("android_classes")
    sources = [DEMO / "core/src/main/kotlin", DEMO / "core/src/test/kotlin"]
    run = subprocess.run([str(tools["kotlinc"]), *map(str, sources), "-cp", os.pathsep.join(map(str, JUNIT_JARS)),
                          "-d", str(out)], capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, f"kotlinc-jvm failed:\n{run.stderr[-5000:]}"
    return out


def junit(tools, compiled: Path, goldens: Path, *classes: str, report: Path | None = None):
    cp = os.pathsep.join(map(str, [compiled, tools["stdlib"], *JUNIT_JARS]))
    props = [f"-Dtfkit.golden={goldens}"] + ([f"-Dtfkit.report.out={report}"] if report else [])
    return subprocess.run([tools["java"], *props, "-cp", cp, "org.junit.runner.JUnitCore",
                           *(f"tfkit.demo.core.{c}" for c in classes)], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def junit_run(tools, compiled, goldens, tmp_path_factory):
    report = tmp_path_factory.mktemp("android_report") / "runner.json"
    return junit(tools, compiled, goldens, *CLASSES, report=report), report


def test_android_core_junit_passes(junit_run):
    run, _ = junit_run
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    count = re.search(r"OK \((\d+) tests?\)", run.stdout)
    seconds = re.search(r"Time: ([\d.,]+)", run.stdout)
    assert count and int(count.group(1)) >= 20, run.stdout[-2000:]
    print(f"android core: {count.group(1)} JUnit tests passed in {seconds.group(1)} s")


def test_android_golden_parity_and_state_replay(junit_run):
    """0 differing bytes over >= 100 real frames, and an exact state replay over >= 300 interpreter steps."""
    run, _ = junit_run
    parity = re.search(r"golden parity: (\d+) differing bytes over (\d+) real frames", run.stdout)
    replay = re.search(r"state replay: (\d+) differing bytes over (\d+) steps", run.stdout)
    assert parity and replay, run.stdout[-3000:]
    assert int(parity.group(1)) == 0 and int(parity.group(2)) >= 100, parity.group(0)
    assert int(replay.group(1)) == 0 and int(replay.group(2)) >= 300, replay.group(0)
    print(f"android core: {parity.group(0)}; {replay.group(0)}")


def test_android_benchmark_json_reads_as_a_runner_result(junit_run):
    """The app's benchmark JSON goes through the harness's own parser, and its latency summary is the
    runner's latency_stats of the same times (nearest-rank)."""
    from tfkit.bench.board.runner import latency_stats
    from tfkit.bench.parse import parse_runner_output

    run, report = junit_run
    assert run.returncode == 0, run.stdout[-3000:]
    text = report.read_text()
    result = parse_runner_output(text, "", 0, name="demo", precision="int8", device="adb:phone")
    payload = json.loads(text)
    for block in (payload["latency_ms"], payload["stream"]["latency_ms"]):
        want = latency_stats(block["times_ms"])
        for key in ("p50", "p90", "p99", "mean", "min", "max", "runs", "method", "times_ms"):
            assert block[key] == want[key], key
        assert block["std"] == pytest.approx(want["std"], rel=1e-12)
    assert result.delegate == "xnnpack" and result.stream["frames"] == 40
    assert result.energy_mj_per_inference is None and result.energy_source.startswith("unavailable")
    assert payload["metadata"]["form"] == "stream"


def test_android_core_fails_when_tfkit_output_changes(tools, compiled, goldens, tmp_path):
    """The golden tests can fail: one changed byte of tfkit's int8 input or of the recorded stream is caught."""
    changed = tmp_path / "golden"
    shutil.copytree(goldens, changed)
    for name, at in (("inputs.bin", 1000), ("stream.bin", 5000)):
        data = bytearray((changed / name).read_bytes())
        data[at] ^= 1
        (changed / name).write_bytes(bytes(data))
    run = junit(tools, compiled, changed, "GoldenTest")
    assert run.returncode != 0
    assert "Failures: 2" in run.stdout, run.stdout[-3000:]
    assert re.search(r"golden parity: [1-9]\d* differing bytes", run.stdout)
    assert re.search(r"state replay: [1-9]\d* differing bytes", run.stdout)


def test_android_project_layout_keeps_core_free_of_android():
    """The checked interface: settings.gradle.kts includes both modules; core imports nothing from Android."""
    settings = (DEMO / "settings.gradle.kts").read_text()
    assert 'include(":core", ":app")' in settings
    assert (DEMO / "app/src/main/AndroidManifest.xml").is_file()
    offenders = [str(p.relative_to(DEMO)) for p in (DEMO / "core/src").rglob("*.kt")
                 if re.search(r"^import (android|androidx|com\.google\.ai\.edge)\.", p.read_text(), re.MULTILINE)]
    assert offenders == []
