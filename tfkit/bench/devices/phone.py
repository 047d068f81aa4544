"""Android phones over adb (`adb` or `adb:SERIAL`): LiteRT's benchmark_model, or the demo app for streams.

The phone has no python, so the runner's role is played by LiteRT's own `benchmark_model` (the user
gives its path: devices.yaml `benchmark_binary` or `tfkit bench --benchmark-binary PATH`; tfkit
cannot ship it). Both it and the model are cached in /data/local/tmp/tfkit/blobs by sha256 (the
staging of `RemoteDevice`, over `AdbTransport`), and each benchmark is one adb round trip: hygiene
snapshot, energy baseline, `taskset MASK benchmark_model ...` pinned to the big cores with the
delegate's flags and op profiling, energy and hygiene again. Its output is parsed by
`benchmark_model.parse_benchmark_model` into the same BenchResult as every device.

Streaming models (tfkit metadata form "stream", or --stream) go through the tfkit demo app's
benchmark mode (android_demo/README.md): `am start` with intent extras, one tfkit.runner/2 JSON
written where `-e out` says, read back and parsed like runner.py's.

devices.yaml options for adb devices:
    benchmark_binary: ~/Downloads/android_aarch64_benchmark_model   # a file on this host
    big_cores: [6, 7]            # or a taskset mask "c0"; default: the fastest cluster of the fingerprint
    app_package: tfkit.demo      # the demo app (benchmark mode, tfkit flash)

Example:
    >>> phone = open_device("adb:R5CR1234ABC")
    >>> phone.run("m.tflite", config=BenchConfig(benchmark_binary="benchmark_model")).latency_ms.mean  # doctest: +SKIP
    4.12
"""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from tfkit.bench.devices.adb import AdbTransport, android_fingerprint
from tfkit.bench.devices.base import DEVICES, BenchConfig, RunnerDelegate
from tfkit.bench.devices.phone_energy import PROBE, choose
from tfkit.bench.devices.remote import SETUP_TIMEOUT_S, RemoteDevice
from tfkit.bench.devices.transport import tail
from tfkit.errors import BenchmarkError
from tfkit.types import BenchResult, Precision

PHONE_WORKDIR = "/data/local/tmp/tfkit"
APP_PACKAGE = "tfkit.demo"
APP_ACTIVITY = "tfkit.demo.app.BenchmarkActivity"
APP_FILES = "/sdcard/Android/data/{package}/files"
ACCELERATORS = {"default": "cpu", "xnnpack": "cpu", "none": "cpu", "gpu": "gpu", "nnapi": "nnapi"}

# Hygiene files as `F<TAB>path<TAB>value` / `D<TAB>cpu folder` lines, rebuilt on the host under a temp
# root and read by board_sysinfo.snapshot: the boards' own reader, one definition of a snapshot.
_SYSFS = r"""
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  printf 'D\t%s\n' "$c"
  for f in scaling_governor scaling_cur_freq scaling_max_freq cpuinfo_max_freq; do
    [ -r "$c/cpufreq/$f" ] && printf 'F\t%s\t%s\n' "$c/cpufreq/$f" "$(cat "$c/cpufreq/$f" 2>/dev/null)"
  done
done
for z in /sys/class/thermal/thermal_zone*; do
  for f in type temp; do [ -r "$z/$f" ] && printf 'F\t%s\t%s\n' "$z/$f" "$(cat "$z/$f" 2>/dev/null)"; done
done
for s in /sys/class/power_supply/*; do
  for f in type capacity status online; do [ -r "$s/$f" ] && printf 'F\t%s\t%s\n' "$s/$f" "$(cat "$s/$f" 2>/dev/null)"; done
done
"""
MARK = "@@tfkit:{}@@"
# One round trip per benchmark: hygiene, energy baseline, the command, energy, hygiene; the run folder
# ($run, scratch for the energy sampler) is removed after.
_RUN = """
run=$1; bin=$2; shift 2
mkdir -p "$run" || exit 3
[ -z "$bin" ] || chmod 755 "$bin" 2>/dev/null
echo @@tfkit:before@@; {sysfs}
echo @@tfkit:energy-begin@@; {begin}
echo @@tfkit:run@@
"$@"; rc=$?
echo; echo @@tfkit:energy-end@@; {end}
echo @@tfkit:after@@; {sysfs}
rm -rf "$run"
exit $rc
"""
# The app's benchmark mode: start it, wait for its JSON (the app writes a temp file, then renames).
_APP = r"""
out=$1; limit=$2; shift 2
rm -f "$out"
said=$(am start -W "$@" 2>&1) || { echo "$said" >&2; exit 5; }
case "$said" in *Error*) echo "$said" >&2; exit 5;; esac
i=0
while [ ! -f "$out" ]; do
  sleep 0.1; i=$((i + 1))
  [ "$i" -ge "$limit" ] && { echo "the app wrote no $out within $((limit / 10)) s" >&2; exit 124; }
done
cat "$out"; rm -f "$out"
"""


def sections(text: str) -> dict[str, str]:
    """The run script's stdout split at its @@tfkit:NAME@@ lines."""
    out, name = {}, "head"
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("@@tfkit:") and line.endswith("@@"):
            name = line[8:-2]
            out[name] = ""
            continue
        out[name] = out.get(name, "") + line + "\n"
    return out


def snapshot_from_sysfs(text: str) -> dict:
    """A hygiene snapshot (board_sysinfo's shape) from the phone's `F`/`D` lines."""
    from tfkit.bench.board import board_sysinfo

    with tempfile.TemporaryDirectory(prefix="tfkit-phone-sys-") as root:
        for line in text.splitlines():
            kind, _, rest = line.partition("\t")
            path, _, value = rest.partition("\t")
            if kind not in ("D", "F") or not path.startswith("/sys/") or ".." in path:
                continue
            local = Path(root) / path.lstrip("/")
            if kind == "D":
                local.mkdir(parents=True, exist_ok=True)
            else:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(value + "\n")
        snap = board_sysinfo.snapshot(root)
    snap["unavailable"] = [u.replace(root.rstrip("/") + "/", "/") for u in snap["unavailable"]]
    return snap


def is_stream_model(path: str | os.PathLike) -> bool:
    """Whether the .tflite's tfkit metadata says it is a streaming model (state fed back)."""
    from tfkit.bench.board.board_stream import read_tfkit_metadata

    try:
        meta = read_tfkit_metadata(os.fspath(path))
    except Exception:  # noqa: BLE001  (an unreadable entry: not a stream model as far as tfkit can tell)
        return False
    return isinstance(meta, dict) and meta.get("form") == "stream"


@DEVICES.register("adb")
class AdbDevice(RemoteDevice):
    """A phone reached with adb: benchmark_model (or the demo app) instead of runner.py."""

    def __init__(self, transport: AdbTransport, *, benchmark_binary: str | os.PathLike | None = None,
                 big_cores: tuple[int, ...] | None = None, app_package: str = APP_PACKAGE,
                 workdir: str | None = None, name: str | None = None):
        super().__init__(transport, python="/system/bin/sh", workdir=workdir or PHONE_WORKDIR, name=name)
        self.benchmark_binary = benchmark_binary
        self.big_cores = big_cores
        self.app_package = app_package
        self._fingerprint: dict | None = None
        self._energy = None  # (source or None, reason), probed once

    @classmethod
    def from_address(cls, address, entry=None) -> AdbDevice:
        label = f"{address.name} ({address})" if address.name else str(address)
        big = getattr(entry, "big_cores", None)
        if isinstance(big, str):
            from tfkit.bench.devices.base import cores_from_mask

            big = cores_from_mask(big)
        return cls(AdbTransport(address.serial, label=label),
                   benchmark_binary=getattr(entry, "benchmark_binary", None), big_cores=big,
                   app_package=getattr(entry, "app_package", None) or APP_PACKAGE,
                   workdir=getattr(entry, "workdir", None), name=address.label)

    # --- what the phone is --------------------------------------------------------------------------

    def fingerprint(self) -> dict:
        """Model, SoC, ABI, API level, clusters, governors, thermal, battery (adb.android_fingerprint)."""
        if self._fingerprint is None:
            self._fingerprint = self._call("connect", "reading its fingerprint",
                                           lambda: android_fingerprint(self.transport))
        return self._fingerprint

    def pinned_cores(self, config: BenchConfig) -> list[int]:
        """The cores benchmark_model is pinned to: --cpu-affinity, else devices.yaml big_cores, else the
        fastest cluster by max frequency, grown to `threads` cores."""
        from tfkit.bench.benchmark_model import big_cores

        if config.cpu_affinity:
            return list(config.cpu_affinity)
        if self.big_cores:
            return list(self.big_cores)
        cpus = self.fingerprint().get("cpus") or []
        return big_cores({c["cpu"]: (c["max_mhz"] or 0) * 1000 for c in cpus}, at_least=config.threads)

    def energy_source(self):
        if self._energy is None:
            done = self._call("connect", "probing its energy readings",
                              lambda: self.transport.shell(PROBE, timeout=SETUP_TIMEOUT_S))
            self._energy = choose(done.stdout)
        return self._energy

    # --- benchmarks ---------------------------------------------------------------------------------

    def run(self, model_path, *, eval_npz=None, config: BenchConfig | None = None, name: str | None = None,
            precision: Precision | str = "unknown") -> BenchResult:
        config, name, what = self.describe_run(model_path, config, name, precision)
        if config.stream or is_stream_model(model_path):
            result = self._run_app(model_path, config=config, name=name, precision=precision, what=what)
        else:
            result = self._run_benchmark_model(model_path, config=config, name=name, precision=precision, what=what)
        if eval_npz is not None:
            result.extra["accuracy_note"] = ("not measured on the phone: benchmark_model and the app's benchmark "
                                             "mode time random or seeded inputs; score on a board or local")
        return result

    def _binary(self, config: BenchConfig) -> Path:
        from tfkit.bench.benchmark_model import GET_BINARY

        given = config.benchmark_binary or self.benchmark_binary
        if not given:
            raise BenchmarkError(f"{self.name}: no benchmark_model binary given. {GET_BINARY.replace('(--', '(tfkit bench --')} "
                                 "or set `benchmark_binary:` of this device in devices.yaml.")
        path = Path(os.path.expanduser(os.fspath(given)))
        if not path.is_file():
            raise BenchmarkError(f"{self.name}: the benchmark_model binary {path} is not a file on this host. "
                                 f"{GET_BINARY}")
        return path

    def _round_trip(self, what: str, run_dir: str, binary: str, argv: list[str], timeout: float):
        source, _ = self.energy_source()
        script = _RUN.format(sysfs=_SYSFS, begin=source.begin() if source else ":", end=source.end() if source else ":")
        done = self._call("run", what, lambda: self.transport.shell(script, run_dir, binary, *argv, timeout=timeout))
        return done.rc, sections(done.stdout), done.stderr

    def _run_benchmark_model(self, model_path, *, config, name, precision, what) -> BenchResult:
        from tfkit.bench.benchmark_model import benchmark_model_command, parse_benchmark_model

        binary = self._binary(config)
        where = self.stage({"model": model_path, "binary": binary}, what=what, runner=False)
        cores = self.pinned_cores(config)
        argv = benchmark_model_command(where["binary"], where["model"], threads=config.threads,
                                       delegate=config.delegate.value, big_cores=cores, warmup=config.warmup,
                                       runs=config.runs, op_profiling=True, delegate_library=config.delegate_library)
        rc, parts, err = self._round_trip(what, f"{self.root}/runs/{uuid.uuid4().hex[:12]}", where["binary"], argv,
                                          config.timeout_s + SETUP_TIMEOUT_S)
        asked = None if config.delegate == RunnerDelegate.DEFAULT else config.delegate.value
        result = parse_benchmark_model(parts.get("run", ""), err, rc, name=name, precision=precision, device=self.name,
                                       threads=config.threads, size_bytes=Path(model_path).stat().st_size,
                                       expected_delegate=asked)
        result.extra.update(cpu_affinity_mask=argv[1] if argv[0] == "taskset" else None,
                            benchmark_binary=str(binary), command=argv)
        return self._finish(result, parts, cores)

    def _finish(self, result: BenchResult, parts: dict, cores: list[int] | None) -> BenchResult:
        from dataclasses import replace

        source, why = self.energy_source()
        energy, text = (None, why)
        if source is not None and result.latency_ms.mean > 0:
            energy, text = source.energy(parts.get("energy-begin", ""), parts.get("energy-end", ""),
                                         latency_ms=result.latency_ms.mean)
        hygiene = {"before": snapshot_from_sysfs(parts.get("before", "")),
                   "after": snapshot_from_sysfs(parts.get("after", ""))}
        return replace(result, hygiene=hygiene, energy_mj_per_inference=energy, energy_source=text,
                       extra={**result.extra, "cpu_affinity": cores})

    # --- the demo app's benchmark mode (streaming models) --------------------------------------------

    def app_installed(self) -> bool:
        done = self._call("connect", f"asking {self.name} for its packages",
                          lambda: self.transport.exec(["pm", "list", "packages", self.app_package],
                                                      timeout=SETUP_TIMEOUT_S))
        return f"package:{self.app_package}" in done.stdout.split()

    def _run_app(self, model_path, *, config, name, precision, what) -> BenchResult:
        from tfkit.bench.devices.remote import flash
        from tfkit.bench.parse import parse_runner_output

        if not self.app_installed():
            raise BenchmarkError(
                f"{what}: a streaming model is benchmarked by the tfkit demo app's benchmark mode (state fed back "
                f"on the phone), and {self.app_package} is not installed there. Build it (android_demo/README.md) "
                f"and install it: tfkit flash {Path(model_path).name} --device {self.name} --apk app-debug.apk")
        accelerator = ACCELERATORS.get(config.delegate.value)
        if accelerator is None:
            raise BenchmarkError(f"{what}: the demo app runs cpu, gpu or nnapi; --delegate {config.delegate.value} "
                                 "is not one of them.")
        files = APP_FILES.format(package=self.app_package)
        placed = self._call("push", what, lambda: flash(self.transport, model_path, "bench", python=self.python,
                                                        root=f"{files}/tfkit"))
        out = f"{files}/tfkit/bench/{uuid.uuid4().hex[:12]}.json"
        extras = ["-n", f"{self.app_package}/{APP_ACTIVITY}", "-e", "model", placed["path"],
                  "-e", "accelerator", accelerator, "--ei", "threads", str(config.threads),
                  "--ei", "warmup", str(config.warmup), "--ei", "runs", str(config.runs), "-e", "out", out]
        limit = str(int(10 * config.timeout_s))  # tenths of a second the script waits for the app's JSON
        rc, parts, err = self._round_trip(what, f"{self.root}/runs/{uuid.uuid4().hex[:12]}", "",
                                          ["sh", "-c", _APP, "sh", out, limit, *extras],
                                          config.timeout_s + SETUP_TIMEOUT_S)
        if rc == 5:
            raise BenchmarkError(f"{what}: `am start` of {self.app_package}/{APP_ACTIVITY} failed: {tail(err)}. "
                                 "Reinstall the app (tfkit flash --apk).")
        result = parse_runner_output(parts.get("run", ""), err, rc, name=name, precision=precision, device=self.name)
        result.extra.update(benchmarked_by=f"{self.app_package} benchmark mode", app_hygiene=result.hygiene,
                            accelerator=accelerator)
        return self._finish(result, parts, None)
