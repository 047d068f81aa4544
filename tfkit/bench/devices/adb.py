"""Android phones over adb: the real adb client (and its server) as a Transport.

tfkit never speaks the adb protocol itself: every command goes through the user's `adb` (platform-tools
on PATH, else the binary that the `adbutils` package ships), so USB, Wi-Fi pairing, `adb connect`
and the user's keys work as they do in a terminal. Commands run with `adb -s SERIAL shell` (shell
protocol v2 on Android 7+: the command's own exit code, stderr apart, binary-safe stdout); files go
with `adb push` / `adb pull` (adb's sync service). adb's own failures are mapped to the typed
transport errors, each saying what to do: an unauthorized phone -> AuthFailed, an offline or absent
phone -> Unreachable, a dropped link -> ConnectionLost, a full disk -> DeviceDiskFull.

Example:
    >>> t = AdbTransport("R5CR1234ABC")
    >>> t.exec(["getprop", "ro.product.model"], timeout=10).stdout   # doctest: +SKIP
    'Pixel 6\\n'
    >>> [d.serial for d in list_adb_devices() if d.state == "device"]   # doctest: +SKIP
    ['R5CR1234ABC']
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

from tfkit.bench.devices.transport import (
    DISK_FULL_WORDS,
    AuthFailed,
    CommandFailed,
    Completed,
    ConnectionLost,
    DeviceDiskFull,
    TimedOut,
    Transport,
    TransportError,
    Unreachable,
    decode,
    run_local,
    tail,
)
from tfkit.errors import ToolNotFoundError

INSTALL_HINT = ("install it: `apt-get install -y adb` (Debian/Ubuntu), Android SDK platform-tools "
                "(https://developer.android.com/tools/releases/platform-tools), or `pip install adbutils` "
                "(ships its own adb)")
UNAUTHORIZED_HINT = ("unlock the phone and tap 'Allow' on the 'Allow USB debugging?' dialog (tick 'Always "
                     "allow from this computer'); no dialog: Developer options > Revoke USB debugging "
                     "authorizations, replug, and run `adb kill-server`")
OFFLINE_HINT = ("replug the cable (or `adb reconnect`), unlock the phone, and check `adb devices` shows it as "
                "'device'")
# adb's own words (its exit code is 1, like many commands'), most specific first.
_UNAUTHORIZED = ("device unauthorized", "device still authorizing", "failed to authenticate")
_ABSENT = ("not found", "no devices/emulators found", "device offline", "more than one device",
           "cannot connect to", "failed to connect")
_RC_MARK = "__tfkit_exit_code="
_DROPPED = ("error: closed", "protocol fault", "connection reset", "couldn't read from device",
            "failed to read", "broken pipe", "device disconnected")


def find_adb() -> str:
    """The adb client: `adb` on PATH, else the one adbutils ships; a clear error when neither."""
    found = shutil.which("adb")
    if found:
        return found
    try:
        import adbutils  # optional: only when adb is not on PATH

        bundled = adbutils.adb_path()
    except Exception:  # noqa: BLE001  (not installed, or a version without a bundled binary)
        bundled = None
    if bundled and os.path.isfile(bundled):
        return bundled
    raise ToolNotFoundError(f"the Android `adb` client is not installed on this host; {INSTALL_HINT}.")


class AdbTransport(Transport):
    """Commands and files to one phone through the real adb client. argv items are quoted with shlex,
    so the phone's shell sees each one as a single word. `server_port` picks an adb server other than
    the default 5037 (else $ANDROID_ADB_SERVER_PORT applies, as for adb itself)."""

    def __init__(self, serial: str | None = None, *, server_port: int | None = None, adb: str | None = None,
                 label: str | None = None):
        self.serial, self.server_port, self._adb = serial, server_port, adb
        self.label = label or (f"adb:{serial}" if serial else "adb")
        self._features: frozenset[str] | None = None

    def base_argv(self) -> list[str]:
        argv = [self._adb or find_adb()]
        if self.server_port:
            argv += ["-P", str(self.server_port)]
        return argv + (["-s", self.serial] if self.serial else [])

    def _adb_run(self, args: list[str], *, timeout: float, phase: str, input_path=None, stdout=subprocess.PIPE):
        try:
            return run_local([*self.base_argv(), *args], timeout=timeout, input_path=input_path, stdout=stdout)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"{self.label}: `adb {args[0]}` did not finish within {timeout:g} s and was abandoned; "
                           "raise the timeout, or check the phone still answers (`adb devices`).",
                           label=self.label, phase=phase, detail="timeout") from None
        except OSError as e:
            raise ToolNotFoundError(f"{self.label}: cannot start adb: {e}; {INSTALL_HINT}.") from None

    def exec(self, argv, *, timeout, input_path=None) -> Completed:
        rc, out, err = self._shell(argv, timeout=timeout, input_path=input_path)
        return Completed(rc, decode(out), decode(err))

    def _exec_to(self, argv, sink, *, timeout):
        rc, _, err = self._shell(argv, timeout=timeout, stdout=sink)
        return rc, "", decode(err)

    def features(self) -> frozenset[str]:
        """What the phone's adbd offers (`adb features`), asked once: shell_v2 is Android 7+."""
        if self._features is None:
            rc, out, err = self._adb_run(["features"], timeout=60, phase="connect")
            if rc != 0:
                raise self.classify(decode(err), phase="connect") or Unreachable(
                    f"{self.label}: `adb features` failed: {tail(decode(err))}.", label=self.label, phase="connect")
            self._features = frozenset(decode(out).replace(",", " ").split())
        return self._features

    def _shell(self, argv, *, timeout, input_path=None, stdout=subprocess.PIPE):
        if "shell_v2" not in self.features():
            return self._exec_out(argv, timeout=timeout, input_path=input_path, stdout=stdout)
        # The exit code also travels as a last stderr line: when the phone vanishes mid-command, adb 29
        # exits 0 and adb 36 exits 255, both silently; only a missing line tells the run was cut short.
        script = f"{shlex.join(str(a) for a in argv)}; rc=$?; printf '\\n{_RC_MARK}%d\\n' \"$rc\" >&2; exit $rc"
        args = ["shell", script] if input_path is not None else ["shell", "-n", script]  # -n: no stdin
        rc, out, err = self._adb_run(args, timeout=timeout, phase="run", input_path=input_path, stdout=stdout)
        cut = err.rfind(b"\n" + _RC_MARK.encode())
        if cut < 0:
            failure = self.classify(decode(err), phase="run")
            raise failure or ConnectionLost(
                f"{self.label}: the phone went away before `{argv[0]}` finished (adb exit {rc}, no exit code from "
                f"the phone; was it unplugged?). {OFFLINE_HINT[0].upper()}{OFFLINE_HINT[1:]}.",
                label=self.label, phase="run", detail=decode(err))
        return int(err[cut + 1 + len(_RC_MARK):].strip() or b"1"), out, err[:cut]

    def _exec_out(self, argv, *, timeout, input_path=None, stdout=subprocess.PIPE):
        """Phones without shell v2 (before Android 7): `adb exec-out` is binary-safe but carries no exit
        code and folds stderr into stdout, so the exit code travels as a last line, and stdin is a file
        pushed first."""
        command = shlex.join(str(a) for a in argv)
        cleanup = ""
        if input_path is not None:
            remote_in = f"/data/local/tmp/.tfkit-stdin.{os.getpid()}"
            self.push(input_path, remote_in, timeout=timeout)
            command, cleanup = f"{command} < {shlex.quote(remote_in)}", f"; rm -f {shlex.quote(remote_in)}"
        script = f"{command}; rc=$?{cleanup}; printf '\\n{_RC_MARK}%d\\n' \"$rc\""
        rc, out, err = self._adb_run(["exec-out", script], timeout=timeout, phase="run")
        if rc != 0:
            raise self.classify(decode(err), phase="run") or ConnectionLost(
                f"{self.label}: adb exec-out failed: {tail(decode(err))}.", label=self.label, phase="run")
        cut = out.rfind(b"\n" + _RC_MARK.encode())
        if cut < 0:
            raise ConnectionLost(f"{self.label}: the phone's output ended before the command did (was it unplugged?).",
                                 label=self.label, phase="run", detail=decode(out[-500:]))
        code, body = int(out[cut + 1 + len(_RC_MARK):].strip() or b"1"), out[:cut]
        if stdout is not subprocess.PIPE:
            stdout.write(body)
            body = b""
        return code, body, b""

    def classify(self, stderr: str, *, phase: str) -> TransportError | None:
        """The typed error for adb's own failure words, or None when the words are the command's."""
        lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
        own = [line for line in lines if line.startswith(("error:", "adb: error:", "adb: ", "* "))
               and not line.startswith("* daemon ")]  # "* daemon not running; starting now": not a failure
        text = " ".join(own).lower()
        if not own:
            return None
        words = tail("\n".join(own))
        if any(w in text for w in _UNAUTHORIZED):
            return AuthFailed(f"{self.label}: the phone has not authorized this computer ({words}); {UNAUTHORIZED_HINT}.",
                              label=self.label, phase=phase, detail=stderr)
        if "device offline" in text:
            return Unreachable(f"{self.label}: the phone is offline ({words}); {OFFLINE_HINT}.",
                               label=self.label, phase=phase, detail=stderr)
        if any(w in text for w in _DROPPED):
            return ConnectionLost(f"{self.label}: the link to the phone dropped during {phase} ({words}); was it "
                                  f"unplugged? {OFFLINE_HINT}.", label=self.label, phase=phase, detail=stderr)
        if any(w in text for w in _ABSENT):
            return Unreachable(f"{self.label}: adb cannot reach the phone ({words}). Check `adb devices` lists "
                               f"{self.serial or 'exactly one phone'} as 'device': plug it in with USB debugging on "
                               "(Developer options), or `adb connect HOST:PORT` for Wi-Fi.",
                               label=self.label, phase=phase, detail=stderr)
        return None

    def push(self, local_path, remote_path, *, timeout=600.0) -> None:
        """`adb push` to a temporary name beside `remote_path`, then a rename there: a broken copy
        never sits under the real name (adbd also removes what a failed push left)."""
        tmp = f"{remote_path}.tmp.{os.getpid()}"
        rc, out, err = self._adb_run(["push", os.fspath(local_path), tmp], timeout=timeout, phase="push")
        if rc != 0:
            raise self._copy_failure(decode(err) or decode(out), remote_path, rc, phase="push")
        done = self.exec(["mv", "-f", tmp, remote_path], timeout=60)
        if done.rc != 0:
            raise CommandFailed(f"{self.label}: cannot rename {tmp} to {remote_path} on the phone: {tail(done.stderr)}.",
                                rc=done.rc, label=self.label, phase="push", detail=done.stderr)

    def pull(self, remote_path, local_path, *, timeout=600.0) -> None:
        """`adb pull` to a temporary name here, renamed once whole."""
        local_path = os.fspath(local_path)
        tmp = f"{local_path}.tmp.{os.getpid()}"
        rc, out, err = self._adb_run(["pull", remote_path, tmp], timeout=timeout, phase="pull")
        if rc != 0:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise self._copy_failure(decode(err) or decode(out), remote_path, rc, phase="pull")
        os.replace(tmp, local_path)

    def install(self, apk: str | os.PathLike, *, timeout: float = 600.0) -> str:
        """`adb install -r APK` (a reinstall keeps the app's data); returns adb's words. pm's own refusal
        (`Failure [INSTALL_...]`) is a CommandFailed quoting it."""
        rc, out, err = self._adb_run(["install", "-r", os.fspath(apk)], timeout=timeout, phase="install")
        words = decode(out) + decode(err)
        if rc != 0 or "Success" not in words:
            failure = self.classify(decode(err), phase="install")
            raise failure or CommandFailed(
                f"{self.label}: installing {os.path.basename(os.fspath(apk))} failed: {tail(words)}. Check it is the "
                "demo app's APK (android_demo: ./gradlew assembleDebug) built for this phone's ABI and API level.",
                rc=rc or 1, label=self.label, phase="install", detail=words)
        return words

    def _copy_failure(self, stderr: str, remote_path: str, rc: int, *, phase: str) -> TransportError:
        if phase == "push" and any(w.lower() in stderr.lower() for w in DISK_FULL_WORDS):
            folder = os.path.dirname(remote_path) or "/data/local/tmp"
            return DeviceDiskFull(
                f"{self.label}: the phone's disk is full: writing {remote_path} failed ({tail(stderr)}). Free space "
                f"in {folder} on the phone (`adb -s {self.serial} shell df -h {folder}`; remove old files with "
                f"`adb -s {self.serial} shell rm`), then run again.", rc=rc, label=self.label, phase=phase, detail=stderr)
        failure = self.classify(stderr, phase=phase)
        if failure is not None:
            return failure
        where = "to" if phase == "push" else "from"
        return CommandFailed(f"{self.label}: adb {phase} {where} {remote_path} failed: {tail(stderr)}.", rc=rc,
                             label=self.label, phase=phase, detail=stderr)


@dataclass(frozen=True)
class AttachedPhone:
    """One line of `adb devices -l`: the serial, its state, its key:value details, and what to do
    when it is not usable (`hint`)."""

    serial: str
    state: str
    details: dict = field(default_factory=dict)
    hint: str | None = None

    @property
    def address(self) -> str:
        return f"adb:{self.serial}"


_STATE_HINTS = {
    "unauthorized": UNAUTHORIZED_HINT,
    "authorizing": "the phone is still deciding on this computer's key: " + UNAUTHORIZED_HINT,
    "offline": OFFLINE_HINT,
    "no permissions": "this user may not open the USB device: add a udev rule for the phone (or the plugdev "
                      "group, Debian: apt-get install android-sdk-platform-tools-common) and replug",
    "recovery": "the phone is in recovery: reboot it into Android",
    "bootloader": "the phone is in the bootloader: reboot it into Android",
    "sideload": "the phone is in sideload mode: reboot it into Android",
}


def parse_adb_devices(text: str) -> list[AttachedPhone]:
    """`adb devices -l` output as AttachedPhone rows (unusable ones carry a hint)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*", "adb server", "adb: ")):
            continue
        serial, _, rest = line.partition(" ") if "\t" not in line else line.partition("\t")
        rest = rest.strip()
        if rest.startswith("no permissions"):
            state, details = "no permissions", {}
        else:
            state, *pairs = rest.split()
            details = dict(p.split(":", 1) for p in pairs if ":" in p)
        out.append(AttachedPhone(serial, state, details, None if state == "device" else _STATE_HINTS.get(
            state, f"adb reports it as '{state}': replug it and check `adb devices`")))
    return out


def list_adb_devices(*, server_port: int | None = None, adb: str | None = None, timeout: float = 30.0) -> list[AttachedPhone]:
    """The phones the adb server knows, usable or not (starts the server if it is not running)."""
    argv = [adb or find_adb(), *(["-P", str(server_port)] if server_port else []), "devices", "-l"]
    try:
        rc, out, err = run_local(argv, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimedOut(f"adb: `adb devices` did not answer within {timeout:g} s; try `adb kill-server`.",
                       label="adb") from None
    if rc != 0:
        raise Unreachable(f"adb: `adb devices` failed: {tail(decode(err))}; try `adb kill-server` and run again.",
                          label="adb", phase="connect", detail=decode(err))
    return parse_adb_devices(decode(out))


# One round trip: properties, kernel, per-core cpufreq, thermal zones, power supplies, dumpsys battery.
_FINGERPRINT = r"""
for p in ro.product.model ro.product.manufacturer ro.board.platform ro.soc.model ro.product.cpu.abi \
         ro.build.version.sdk ro.build.version.release; do printf 'prop\t%s\t%s\n' "$p" "$(getprop "$p")"; done
printf 'kernel\t%s\n' "$(uname -r 2>/dev/null)"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  printf 'cpu\t%s\t%s\t%s\n' "${c##*/cpu}" "$(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null)" \
    "$(cat "$c/cpufreq/scaling_governor" 2>/dev/null)"
done
for z in /sys/class/thermal/thermal_zone*; do
  [ -e "$z" ] && printf 'zone\t%s\t%s\t%s\n' "${z##*/}" "$(cat "$z/type" 2>/dev/null)" "$(cat "$z/temp" 2>/dev/null)"
done
for s in /sys/class/power_supply/*; do
  [ -e "$s" ] && printf 'supply\t%s\t%s\t%s\t%s\t%s\n' "${s##*/}" "$(cat "$s/type" 2>/dev/null)" \
    "$(cat "$s/capacity" 2>/dev/null)" "$(cat "$s/status" 2>/dev/null)" "$(cat "$s/online" 2>/dev/null)"
done
echo '--- dumpsys battery'
dumpsys battery 2>/dev/null
exit 0
"""


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def parse_dumpsys_battery(text: str) -> dict | None:
    """`dumpsys battery` -> {"percent", "charging", "plugged"} (None when it printed no state).
    status 2 is charging and 5 full (BatteryManager.BATTERY_STATUS_*); plugged is any "... powered: true"."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            values[key.strip().lower()] = value.strip()
    if "level" not in values:
        return None
    level, scale = _int(values.get("level")), _int(values.get("scale")) or 100
    status = _int(values.get("status"))
    plugged = any(values.get(f"{kind} powered") == "true" for kind in ("ac", "usb", "wireless", "dock"))
    return {"percent": round(100 * level / scale) if level is not None else None,
            "charging": status in (2, 5) if status is not None else None, "plugged": plugged}


def android_fingerprint(transport: Transport, *, timeout: float = 30.0) -> dict:
    """The phone as `tfkit devices` shows it, in the shape of board_sysinfo.fingerprint plus Android's
    own: model, SoC (ro.board.platform), ABI, API level, cores grouped into clusters by max frequency
    (little first), governors, thermal zones (°C), battery level and charging (dumpsys battery, else
    /sys/class/power_supply), each missing value None, never guessed."""
    done = transport.exec(["sh", "-c", _FINGERPRINT], timeout=timeout)
    if done.rc != 0:
        raise CommandFailed(f"{transport.label}: reading the phone's fingerprint failed: {tail(done.stderr)}.",
                            rc=done.rc, label=transport.label, phase="fingerprint", detail=done.stderr)
    text, _, battery_text = done.stdout.partition("--- dumpsys battery")
    props, cpus, thermal, power, kernel = {}, [], [], [], None
    for line in text.splitlines():
        kind, *cols = line.split("\t")
        if kind == "prop" and len(cols) == 2:
            props[cols[0]] = cols[1].strip() or None
        elif kind == "kernel" and cols:
            kernel = cols[0].strip() or None
        elif kind == "cpu" and len(cols) == 3 and cols[0].isdigit():
            khz = _int(cols[1])
            cpus.append({"cpu": int(cols[0]), "max_mhz": round(khz / 1000) if khz else None,
                         "governor": cols[2].strip() or None})
        elif kind == "zone" and len(cols) == 3:
            milli = _int(cols[2])
            thermal.append({"zone": cols[0], "type": cols[1].strip() or None,
                            "temp_c": round(milli / 1000, 1) if milli is not None else None})
        elif kind == "supply" and len(cols) == 5:
            name, kind_, capacity, status, online = (c.strip() for c in cols)
            entry = {"name": name, "type": kind_ or None}
            if kind_ == "Battery":
                entry.update(capacity_percent=_int(capacity), status=status or None,
                             charging=status in ("Charging", "Full") if status else None)
            else:
                entry["online"] = bool(_int(online)) if _int(online) is not None else None
            power.append(entry)
    cpus.sort(key=lambda c: c["cpu"])
    thermal.sort(key=lambda z: _int(z["zone"].rpartition("zone")[2]) or 0)
    clusters: dict[int | None, list[int]] = {}
    for c in cpus:
        clusters.setdefault(c["max_mhz"], []).append(c["cpu"])
    battery = parse_dumpsys_battery(battery_text)
    source = "dumpsys battery"
    if battery is None:
        supply = next((p for p in power if p["type"] == "Battery"), None)
        battery = {"percent": supply["capacity_percent"], "charging": supply["charging"]} if supply else None
        source = "/sys/class/power_supply" if supply else None
    sdk = _int(props.get("ro.build.version.sdk"))
    return {
        "os": "Android", "model": props.get("ro.product.model"), "manufacturer": props.get("ro.product.manufacturer"),
        "soc": props.get("ro.board.platform"), "cpu_model": props.get("ro.soc.model"), "board": None,
        "abi": props.get("ro.product.cpu.abi"), "android_api": sdk, "android_release": props.get("ro.build.version.release"),
        "kernel": kernel, "cores": len(cpus) or None,
        "clusters": [{"cpus": ids, "max_mhz": mhz} for mhz, ids in sorted(clusters.items(), key=lambda kv: kv[0] or 0)],
        "max_mhz": sorted({c["max_mhz"] for c in cpus if c["max_mhz"]}, reverse=True),
        "governors": sorted({c["governor"] for c in cpus if c["governor"]}),
        "cpus": cpus, "thermal": thermal, "power": power, "battery": battery, "battery_source": source,
    }
