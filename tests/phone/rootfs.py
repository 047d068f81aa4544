"""The stand-in phone's file system: folders, recorded answers (tests/data/phone) and the host mounts.

`build_root` lays out a temp folder as the phone's / (/data/local/tmp, /sdcard, /system/bin with getprop,
dumpsys and taskset that answer from the recordings, the recorded sysfs files, LiteRT benchmark_model
outputs); `mount_host`, run inside the phone's private mount namespace, binds the host's /usr and /dev
into it and mounts any small tmpfs disks asked for.

Example:
    build_root(Path("/tmp/phone"))   # then, inside `unshare -Urm`: mount_host(Path("/tmp/phone"), [])
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "phone"


def load_props(path: Path) -> dict[str, str]:
    """`getprop`'s own output format, `[name]: [value]` a line, as a dict."""
    props = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.startswith("[") and "]: [" in line:
            name, _, value = line[1:].partition("]: [")
            props[name] = value.rstrip().removesuffix("]")
    return props


def build_root(root: Path, data: Path = DATA) -> None:
    """The phone's file system: folders, the recorded sysfs files, and getprop/dumpsys that print the
    recorded answers (tests/data/phone/). The host's /usr and /dev are mounted in by `mount_host`."""
    for folder in ("usr", "dev", "proc", "system/bin", "system/etc/standin", "data/local/tmp", "sdcard", "vendor"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if not (root / link).is_symlink() and Path("/" + link).is_symlink():
            (root / link).symlink_to(os.readlink("/" + link))
    (root / "system/bin/sh").unlink(missing_ok=True)
    (root / "system/bin/sh").symlink_to("/bin/sh")
    standin = root / "system/etc/standin"
    for name in ("getprop.txt", "dumpsys_battery.txt", "app_benchmark.json"):
        if (data / name).is_file():
            shutil.copyfile(data / name, standin / name)
    recordings = data.parent / "benchmark_model"  # LiteRT benchmark_model outputs, replayed by tests/phone/benchmark_model
    if recordings.is_dir():
        shutil.copytree(recordings, standin / "benchmark_model", dirs_exist_ok=True)
    for rel, value in json.loads((data / "sysfs.json").read_text())["files"].items():
        target = root / rel.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{value}\n")
    tools = {
        "getprop": '[ $# -eq 0 ] && exec cat /system/etc/standin/getprop.txt\n'
                   'sed -n "s/^\\[$1\\]: \\[\\(.*\\)\\]$/\\1/p" /system/etc/standin/getprop.txt | head -n 1\n',
        # The power-stats HAL dump: a test that gives the phone power rails writes power_stats/NN.txt, served
        # one per call in order (the last one again after that); without them, no such service, as on most phones.
        "dumpsys": 'case "$1" in battery) exec cat /system/etc/standin/dumpsys_battery.txt;;\n'
                   'android.hardware.power.stats.IPowerStats/default)\n'
                   '  n=$(cat /data/local/tmp/.standin-power-stats 2>/dev/null || echo 0)\n'
                   '  f=$(ls /system/etc/standin/power_stats/*.txt 2>/dev/null | sed -n "$((n + 1))p")\n'
                   '  [ -n "$f" ] || f=$(ls /system/etc/standin/power_stats/*.txt 2>/dev/null | tail -n 1)\n'
                   '  [ -n "$f" ] || { echo "Can\'t find service: $1"; exit 0; }\n'
                   '  echo $((n + 1)) > /data/local/tmp/.standin-power-stats; exec cat "$f";;\n'
                   '*) echo "Can\'t find service: $1"; exit 0;; esac\n',
        # Installed packages live in /data/system/standin-packages. `pm install APK` takes the package name
        # from the APK's standin-package.txt entry (the stand-in does not read binary manifests).
        "pm": 'db=/data/system/standin-packages; mkdir -p /data/system; touch $db\n'
              'case "$1 $2" in "list packages") grep -F "${3:-}" $db | sed "s/^/package:/"; exit 0;; esac\n'
              'case "$1" in install) for a; do apk=$a; done\n'
              '  pkg=$(unzip -p "$apk" standin-package.txt 2>/dev/null) || '
              '{ echo "Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse $apk]"; exit 1; }\n'
              '  grep -qxF "$pkg" $db || echo "$pkg" >> $db; echo Success; exit 0;;\n'
              'esac; echo "pm (stand-in): unsupported: $*" >&2; exit 1\n',
        # `am start [-W] -n PKG/ACTIVITY -e K V --ei K N ...`: for the demo app's benchmark mode, write the
        # recorded app JSON (app_benchmark.json) where `-e out` says, as the app does (temp file, rename).
        "am": '[ "$1" = start ] || { echo "am (stand-in): unsupported: $*" >&2; exit 1; }; shift\n'
              'cmp="" out="" model=""\n'
              'while [ $# -gt 0 ]; do case "$1" in -n) cmp=$2; shift;; -e|--es) case "$2" in out) out=$3;; '
              'model) model=$3;; esac; shift 2;; --ei|--ez|--ef) shift 2;; esac; shift; done\n'
              'pkg=${cmp%%/*}; echo "Starting: Intent { cmp=$cmp }"\n'
              'grep -qxF "$pkg" /data/system/standin-packages 2>/dev/null || '
              '{ echo "Error type 3"; echo "Error: Activity class {$cmp} does not exist."; exit 0; }\n'
              'mkdir -p "${out%/*}"\n'
              'if [ -f "$model" ]; then cp /system/etc/standin/app_benchmark.json "$out.tmp"; else '
              'printf \'{"error": "FileNotFoundException: %s", "kind": "internal", "schema": "tfkit.runner/2"}\\n\' '
              '"$model" > "$out.tmp"; fi; mv "$out.tmp" "$out"\n'
              'echo "Status: ok"; echo "Activity: $cmp"; echo "WaitTime: 1"; echo Complete\n',
        # toybox `taskset MASK CMD...`: the phone's CPUs are not this host's, so the stand-in checks the
        # mask against the phone's cores (/sys/devices/system/cpu/possible) and runs the command unpinned.
        "taskset": 'mask=$1; shift; last=$(cut -d- -f2 /sys/devices/system/cpu/possible)\n'
                   '[ $(( 0x$mask >> (last + 1) )) -eq 0 ] && [ $(( 0x$mask )) -ne 0 ] || '
                   '{ echo "taskset (stand-in): mask $mask names no CPU of this phone" >&2; exit 1; }\n'
                   'exec "$@"\n',
    }
    for name, body in tools.items():
        tool = root / "system/bin" / name
        tool.write_text("#!/bin/sh\n" + body)
        tool.chmod(0o755)


def mount_host(root: Path, disk: list[str]) -> None:
    """Inside the private mount namespace: the host's programs, /dev and /proc into the phone, and any
    small tmpfs disks asked for (PATH:SIZE)."""
    for folder in ("usr", "dev", "proc"):  # /proc: uptime and the commands' own /proc/self, as a phone has
        subprocess.run(["mount", "--rbind", f"/{folder}", str(root / folder)], check=True)
    for spec in disk:
        path, _, size = spec.rpartition(":")
        target = root / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "phone-disk", str(target)], check=True)
