"""A device reached through a Transport: stage the runner and the model there, run, read, clean up.

Written once over `Transport` (exec / push / pull), so a board over ssh and a phone over adb differ
only in their transport. On the device, everything lives under one folder (devices.yaml `workdir`,
default `~/.cache/tfkit`):

    blobs/<sha256>.tflite, blobs/<sha256>.npz   models and eval clips, by content: sent once
    runner/<sha256 of the set>/runner.py ...    the runner and its board_*.py siblings
    runs/<id>/                                  one benchmark's working folder, removed after it

One round trip sets the folders up and says which blobs are already there, so an unchanged model
is not sent again. A pushed file is written to a temporary name, its sha256 checked on the device,
then renamed. A dropped connection is retried once; then the error names the host and the phase
(connect, push, run, pull) and the device is marked lost, so the rest of a batch fails fast while
the results already measured are kept (see `tfkit.bench.benchmark`).

Example:
    >>> device = RemoteDevice(SshTransport("board", user="pi"), python="/home/pi/venv/bin/python")
    >>> device.run("model_int8.tflite", config=BenchConfig(runs=20)).latency_ms.p50   # doctest: +SKIP
    1.9
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path

from tfkit.bench.devices.base import BenchConfig, Device, runner_args, runner_files
from tfkit.bench.devices.transport import (
    AuthFailed,
    CommandFailed,
    ConnectionLost,
    Transport,
    TransportError,
    Unreachable,
    tail,
    write_failure,
)
from tfkit.bench.parse import last_json_object, parse_runner_output
from tfkit.errors import BenchmarkError
from tfkit.types import BenchResult, Precision

SETUP_TIMEOUT_S = 60.0
DEFAULT_WORKDIR = "~/.cache/tfkit"
RESULT_FILE = "result.json"

# One round trip: make the folders, print the absolute root, then which of the given paths exist.
_SETUP = r'''
case "$1" in "~") root=$HOME;; "~/"*) root=$HOME/${1#"~/"};; *) root=$1;; esac
shift
mkdir -p "$root/blobs" "$root/runner" "$root/runs" || exit 3
cd "$root" || exit 3
echo "root=$(pwd)"
echo "home=$HOME"
for p in "$@"; do [ -e "$p" ] && echo "have=$p"; done
exit 0
'''
# After a push: check the sha256 there (sha256sum, else the device's python), then rename into place.
_VERIFY = r'''
part=$1; want=$2; dst=$3; py=$4
got=$(sha256sum "$part" 2>/dev/null) && got=${got%% *} || got=$("$py" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
print(h.hexdigest())' "$part")
if [ "$got" = "$want" ]; then mv -f "$part" "$dst"; else rm -f "$part"; echo "sha256 mismatch: sent $want, the device has ${got:-nothing}" >&2; exit 4; fi
'''
# The runner set, assembled from its blobs into its own folder (the files import each other by name).
_ASSEMBLE = r'''
dir=$1; shift
mkdir -p "$dir.tmp.$$" || exit 3
while [ $# -gt 0 ]; do cp "blobs/$1" "$dir.tmp.$$/$2" || exit 3; shift 2; done
rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
'''
# The runner in its own folder; its --json-out file follows a marker line on stdout (the fallback when
# its own last line is lost or garbled), then the folder is removed: one round trip per benchmark.
JSON_OUT_MARKER = "@@tfkit:json-out@@"
_RUN = r'''
run=$1; shift
mkdir -p "$run" && cd "$run" || exit 3
"$@"; rc=$?
echo; echo "@@tfkit:json-out@@"; cat result.json 2>/dev/null
cd / && rm -rf "$run"
exit $rc
'''


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _set_hash(files: list[tuple[str, str]]) -> str:
    return hashlib.sha256("".join(f"{name}:{digest}\n" for name, digest in files).encode()).hexdigest()


class RemoteDevice(Device):
    """runner.py on a device reached through `transport`, under the device's `python`."""

    def __init__(self, transport: Transport, *, python: str = "python3", workdir: str | None = None,
                 name: str | None = None):
        self.transport = transport
        self.python = python
        self.workdir = workdir or DEFAULT_WORKDIR
        self.name = name or transport.label
        self._root: str | None = None
        self._lost: BenchmarkError | None = None
        self._home: str | None = None
        self._present: set[str] = set()  # paths under the root known to be there (set up or sent by us)

    @property
    def root(self) -> str | None:
        """The device's cache folder as an absolute path there (known after the first round trip)."""
        return self._root

    @property
    def device_python(self) -> str:
        """`python` as the device runs it: a leading ~/ is the device user's home (no shell expands it)."""
        if self.python.startswith("~/") and self._home:
            return f"{self._home}/{self.python[2:]}"
        return self.python

    # --- the link ---------------------------------------------------------------------------------

    def _call(self, phase: str, what: str, fn):
        """fn() with one retry when the link drops; then a BenchmarkError naming host and phase,
        and the device is marked lost (the rest of a batch fails fast, earlier results stay)."""
        if self._lost is not None:  # fail fast; a device never reached gets the same words again
            lost = f"not run, the device was lost earlier: {self._lost}" if self._root is not None else self._lost
            raise BenchmarkError(f"{what}: {lost}") from None
        for attempt in (1, 2):
            try:
                return fn()
            except AuthFailed as e:
                self._lost = BenchmarkError(str(e))
                raise BenchmarkError(f"{what}: {e}") from None
            except ConnectionLost as e:
                if isinstance(e, Unreachable) and self._root is None:  # never reached: say so, do not wait again
                    self._lost = BenchmarkError(str(e))
                    raise BenchmarkError(f"{what}: {e}") from None
                if attempt == 1:
                    self.transport.close()
                    continue
                again = "the retry could not reconnect" if e.phase == "connect" else "it dropped again on the retry"
                lost = BenchmarkError(
                    f"{self.transport.label}: connection lost during {phase} (retried once; {again}: {tail(e.detail or str(e))}). "
                    "Check the device is on and reachable (`tfkit devices`), then run again.")
                self._lost = lost
                raise BenchmarkError(f"{what}: {lost}") from None
            except TransportError as e:
                raise BenchmarkError(f"{what}: {e}") from None

    def _setup(self, paths: list[str], what: str) -> set[str]:
        """Make the device's folders (once) and return which of `paths` (relative to the root) exist."""
        def go():
            done = self.transport.shell(_SETUP, self.workdir, *paths, timeout=SETUP_TIMEOUT_S)
            if done.rc != 0:
                raise write_failure(self.transport.label, f"{self.workdir}/blobs", done, phase="connect")
            lines = done.stdout.splitlines()
            roots = [line[5:] for line in lines if line.startswith("root=")]
            if not roots:
                raise CommandFailed(f"{self.transport.label}: the device's shell did not answer as expected "
                                    f"({tail(done.stdout + done.stderr)}).", rc=done.rc, label=self.transport.label,
                                    phase="connect")
            self._root = roots[-1]
            self._home = next((line[5:] for line in lines if line.startswith("home=")), None)
            return {line[5:] for line in lines if line.startswith("have=")}

        return self._call("connect", what, go)

    def _push(self, local: str | os.PathLike, rel: str, digest: str, what: str) -> None:
        """Send one file to root/rel, checked by sha256 on the device before it takes its name."""
        def go():
            dst = f"{self._root}/{rel}"
            part = f"{dst}.part"
            self.transport.push(local, part)
            done = self.transport.shell(_VERIFY, part, digest, dst, self.device_python, timeout=SETUP_TIMEOUT_S)
            if done.rc != 0:
                raise write_failure(self.transport.label, dst, done, phase="push")

        self._call("push", what, go)
        self._present.add(rel)

    # --- staging ----------------------------------------------------------------------------------

    def stage(self, files: dict[str, str | os.PathLike], *, what: str, runner: bool = True) -> dict[str, str]:
        """Put the runner set (unless `runner` is False: a phone runs benchmark_model, not python) and
        `files` ({key: local path}) on the device; returns {key: device path} plus "runner" (the runner
        folder). Only what the device lacks is sent; each file is stored by its sha256."""
        if not runner:
            return self._stage_blobs(files, what=what)
        runner = [(p.name, sha256_file(p), p) for p in runner_files()]
        runner_dir = f"runner/{_set_hash([(n, d) for n, d, _ in runner])[:16]}"
        blobs = {key: (f"blobs/{sha256_file(p)}{Path(p).suffix}", p) for key, p in files.items()}
        runner_blobs = {n: (f"blobs/{d}{Path(n).suffix}", p, d) for n, d, p in runner}
        wanted = [runner_dir, *(rel for rel, _ in blobs.values()), *(rel for rel, _, _ in runner_blobs.values())]
        # Known from earlier in this batch: no set-up round trip at all (a file removed meanwhile is
        # reported by the runner as model_not_found).
        have = self._present if self._root and set(wanted) <= self._present else self._setup(wanted, what)
        self._present |= have
        if runner_dir not in have:
            for rel, path, digest in runner_blobs.values():
                if rel not in have:
                    self._push(path, rel, digest, what)
            pairs = [x for n, (rel, _, _) in runner_blobs.items() for x in (rel[len("blobs/"):], n)]

            def assemble():
                done = self.transport.shell('cd "$1" || exit 3; shift\n' + _ASSEMBLE, self._root, runner_dir, *pairs,
                                            timeout=SETUP_TIMEOUT_S)
                if done.rc != 0:
                    raise write_failure(self.transport.label, f"{self._root}/{runner_dir}", done, phase="push")

            self._call("push", what, assemble)
            self._present.add(runner_dir)
        return {"runner": f"{self._root}/{runner_dir}", **self._send_blobs(blobs, have, what)}

    def _stage_blobs(self, files: dict[str, str | os.PathLike], *, what: str) -> dict[str, str]:
        blobs = {key: (f"blobs/{sha256_file(p)}{Path(p).suffix}", p) for key, p in files.items()}
        wanted = [rel for rel, _ in blobs.values()]
        have = self._present if self._root and set(wanted) <= self._present else self._setup(wanted, what)
        self._present |= have
        return self._send_blobs(blobs, have, what)

    def _send_blobs(self, blobs: dict[str, tuple[str, str | os.PathLike]], have: set[str], what: str) -> dict[str, str]:
        """Push each blob the device lacks; {key: its path there}."""
        for rel, path in blobs.values():
            if rel not in have:
                self._push(path, rel, rel.split("/")[1].split(".")[0], what)
        return {k: f"{self._root}/{rel}" for k, (rel, _) in blobs.items()}

    # --- Device -----------------------------------------------------------------------------------

    def describe_run(self, model_path, config: BenchConfig | None, name: str | None,
                     precision: Precision | str) -> tuple[BenchConfig, str, str]:
        """The run's config (default BenchConfig()), name (default: the file's stem) and how errors call it."""
        name = name or Path(model_path).stem
        label = Precision(precision).value if isinstance(precision, Precision) else str(precision)
        return config or BenchConfig(), name, f"{name} ({label}) on {self.name}"

    def run(self, model_path, *, eval_npz=None, config: BenchConfig | None = None, name: str | None = None,
            precision: Precision | str = "unknown") -> BenchResult:
        config, name, what = self.describe_run(model_path, config, name, precision)
        files = {"model": model_path, **({"eval": eval_npz} if eval_npz is not None else {})}
        where = self.stage(files, what=what)
        run_dir = f"{self._root}/runs/{uuid.uuid4().hex[:12]}"
        argv = [self.device_python, f"{where['runner']}/runner.py",
                *runner_args(where["model"], config=config, eval_npz=where.get("eval"),
                             json_out=f"{run_dir}/{RESULT_FILE}")]
        rc, out, err = self._call("run", what, lambda: self.transport.shell(
            _RUN, run_dir, *argv, timeout=config.timeout_s + SETUP_TIMEOUT_S))
        out, marker, json_out = out.rpartition(JSON_OUT_MARKER)
        if not marker:  # the script did not get that far (killed?): fetch the file, then tidy up
            out, json_out = json_out, self._pull_result(run_dir, what) or ""
            self._remove(run_dir)
        if rc in (126, 127) and last_json_object(out) is None:
            raise BenchmarkError(f"{what}: the device cannot start {self.python!r} ({tail(err)}). Install Python 3 "
                                 "there, or set `python:` of this device in devices.yaml to the board's python.")
        if last_json_object(out) is None and last_json_object(json_out) is not None:
            out = json_out  # stdout lost or garbled: the runner's --json-out file is the fallback
        return parse_runner_output(out, err, rc, name=name, precision=precision, device=self.name)

    def _remove(self, path: str) -> None:
        if self._lost is None:
            try:
                self.transport.exec(["rm", "-rf", path], timeout=SETUP_TIMEOUT_S)
            except TransportError:
                pass  # the run folder is only a leftover; the result (or its error) matters more

    def _pull_result(self, run_dir: str, what: str) -> str | None:
        with tempfile.TemporaryDirectory(prefix="tfkit-pull-") as tmp:
            local = Path(tmp) / RESULT_FILE
            try:
                self._call("pull", what, lambda: self.transport.pull(f"{run_dir}/{RESULT_FILE}", local))
            except BenchmarkError:
                if self._lost is not None:
                    raise
                return None  # no file there either: parse_runner_output reports the exit and stderr
            return local.read_text(encoding="utf-8", errors="replace")

    def fingerprint(self) -> dict:
        """What the device is, read there by board_sysinfo.py under the device's python."""
        what = "reading its fingerprint"
        where = self.stage({}, what=what)
        argv = [self.device_python, f"{where['runner']}/board_sysinfo.py"]
        rc, out, err = self._call("run", what,
                                  lambda: self.transport.exec(argv, timeout=SETUP_TIMEOUT_S))
        found = last_json_object(out) if rc == 0 else None
        if not isinstance(found, dict):
            raise BenchmarkError(f"{self.name}: the device's python {self.python!r} failed to report its fingerprint "
                                 f"(exit {rc}: {tail(err or out)}); install Python 3 there or fix `python:` in "
                                 "devices.yaml.")
        return found

    def close(self) -> None:
        self.transport.close()


# --- flashed models: ~/tfkit/models/<name>/<file> on any device ------------------------------------

MODELS_DIR = "tfkit/models"  # under the device user's $HOME
_FLASH_CHECK = r'''
dir=${3:-$HOME/tfkit/models}/$1; f=$dir/$2
mkdir -p "$dir" || exit 3
echo "dir=$dir"
if [ -f "$f" ]; then s=$(sha256sum "$f" 2>/dev/null) && echo "have=${s%% *}"; fi
exit 0
'''
_FLASH_LIST = r'''
cd "${1:-$HOME/tfkit/models}" 2>/dev/null || exit 0
for f in */*; do
  [ -f "$f" ] || continue
  case "$f" in *.part|*.tmp.*) continue;; esac
  size=$(wc -c < "$f"); s=$(sha256sum "$f" 2>/dev/null); printf '%s\t%s\t%s\n' "$f" "$size" "${s%% *}"
done
'''


def flash(transport: Transport, local: str | os.PathLike, name: str, *, python: str = "python3",
          root: str | None = None) -> dict:
    """Put `local` at ~/tfkit/models/<name>/<file name> on the device (or under `root`, an absolute
    folder there: a phone app's model folder), checked by sha256 there.
    Returns {"path", "sha256", "size_bytes", "copied"}; an identical file already there is left alone.

    Example:
        >>> flash(SshTransport("board"), "model_int8.tflite", "tsm-int8")["copied"]   # doctest: +SKIP
        True
    """
    local = Path(local)
    digest = sha256_file(local)
    label = transport.label
    done = transport.shell(_FLASH_CHECK, name, local.name, root or "", timeout=SETUP_TIMEOUT_S)
    lines = done.stdout.splitlines()
    folder = next((line[4:] for line in lines if line.startswith("dir=")), None)
    if done.rc != 0 or folder is None:
        raise write_failure(label, f"{root or '~/' + MODELS_DIR}/{name}", done, phase="connect")
    path = f"{folder}/{local.name}"
    info = {"path": path, "sha256": digest, "size_bytes": local.stat().st_size}
    if f"have={digest}" in lines:
        return {**info, "copied": False}
    transport.push(local, f"{path}.part")
    done = transport.shell(_VERIFY, f"{path}.part", digest, path, python, timeout=SETUP_TIMEOUT_S)
    if done.rc != 0:
        raise write_failure(label, path, done, phase="push")
    return {**info, "copied": True}


def flashed(transport: Transport, *, root: str | None = None) -> list[dict]:
    """What ~/tfkit/models (or `root`) holds on the device: [{"name", "file", "size_bytes", "sha256"}], sorted."""
    done = transport.shell(_FLASH_LIST, root or "", timeout=SETUP_TIMEOUT_S)
    if done.rc != 0:
        raise CommandFailed(f"{transport.label}: cannot list {root or '~/' + MODELS_DIR} there: {tail(done.stderr)}.", rc=done.rc,
                            label=transport.label, phase="run", detail=done.stderr)
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and "/" in parts[0] and parts[1].strip().isdigit():
            name, _, file = parts[0].partition("/")
            rows.append({"name": name, "file": file, "size_bytes": int(parts[1]), "sha256": parts[2] or None})
    return sorted(rows, key=lambda r: (r["name"], r["file"]))
