"""The real adb client and server, connected over loopback TCP to stand-in phones (tests/phone/adbd.py).

What runs: the adb that tfkit itself would use (`find_adb()`: adb on PATH, else adbutils' bundled one)
as a private server on a free port (ANDROID_ADB_SERVER_PORT for the session, HOME and TMPDIR in a
scratch folder so the adb key and log stay there, ADB_LIBUSB=0), and each phone as
`unshare -Urm python -m tests.phone.adbd` on its own free loopback port, joined with
`adb connect 127.0.0.1:PORT`. Teardown: `adb disconnect`, the phones stopped, `adb kill-server`.

With CI=true a missing part (adb, user namespaces for the phone's chroot) fails the test; otherwise
it skips with the reason.

Example:
    from tests.phone.fixture import adb_lab, phone  # noqa: F401  (the fixtures)

    def test_model(phone):
        assert AdbTransport(phone.serial, server_port=phone.server_port).exec(
            ["getprop", "ro.product.model"], timeout=10).stdout.strip() == "Pixel 6"
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def need(why: str):
    """Skip with the reason, or under CI (CI=true) fail: the phone tests must not vanish quietly."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (.ci/run installs adb: apt-get install -y adb)")
    pytest.skip(why)


def free_port() -> int:
    """A free loopback port (the kernel's ephemeral range: above 15555, away from adb's 5555-5585)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Phone:
    """One stand-in phone as the adb server knows it."""

    serial: str
    port: int
    root: Path  # its file system (a tmpfs disk asked for is visible only on the phone)
    server_port: int
    proc: subprocess.Popen
    lab: AdbLab

    def adb(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.lab.adb("-s", self.serial, *args, timeout=timeout)

    def path(self, phone_path: str) -> Path:
        return self.root / phone_path.lstrip("/")

    def alive(self) -> bool:
        return self.proc.poll() is None


class AdbLab:
    """A private adb server and the phones connected to it."""

    def __init__(self, scratch: Path, adb: str):
        self.scratch, self.adb_path = scratch, adb
        self.server_port = free_port()
        home = scratch / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(home), "TMPDIR": str(home), "ADB_LIBUSB": "0",
                    "ANDROID_ADB_SERVER_PORT": str(self.server_port)}
        self.phones: list[Phone] = []

    def adb(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.adb_path, "-P", str(self.server_port), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def start_phone(self, name: str = "phone", *, unauthorized: bool = False, drop_after_bytes: int | None = None,
                    disk: str | None = None, shell_v2: bool = True) -> Phone:
        """A new stand-in phone, connected; `disk` is "SIZE" for a tmpfs /data/local/tmp of that size."""
        port, root = free_port(), self.scratch / f"{name}-{len(self.phones)}"
        root.mkdir(parents=True)
        ready = root.parent / f"{root.name}.ready"
        argv = ["unshare", "-Urm", sys.executable, "-m", "tests.phone.adbd", "--root", str(root), "--port", str(port),
                "--ready", str(ready)]
        argv += ["--unauthorized"] if unauthorized else []
        argv += ["--drop-after-bytes", str(drop_after_bytes)] if drop_after_bytes is not None else []
        argv += ["--disk", f"/data/local/tmp:{disk}"] if disk else []
        argv += [] if shell_v2 else ["--no-shell-v2"]
        with open(root.parent / f"{root.name}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                why = (root.parent / f"{root.name}.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"the stand-in phone did not start: {' | '.join(why) or 'no output'}")
            time.sleep(0.05)
        phone = Phone(f"127.0.0.1:{port}", port, root, self.server_port, proc, self)
        self.phones.append(phone)
        said = self.adb("connect", phone.serial, timeout=30)  # exits 0 even when it failed: read its words
        words = said.stdout + said.stderr
        if "connected to" not in words and not (unauthorized and "failed to authenticate" in words):
            raise RuntimeError(f"adb connect {phone.serial} failed: {words.strip()}")
        self.wait_state(phone.serial, "unauthorized" if unauthorized else "device")
        return phone

    def wait_state(self, serial: str, state: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            listed = self.adb("devices").stdout
            if any(line.split("\t") == [serial, state] for line in listed.splitlines()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{serial} never became {state!r} in `adb devices`: {listed.strip()}")
            time.sleep(0.05)

    def stop_phone(self, phone: Phone) -> None:
        self.adb("disconnect", phone.serial, timeout=10)
        if phone.alive():
            phone.proc.terminate()
            try:
                phone.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                phone.proc.kill()
                phone.proc.wait()

    def close(self) -> None:
        for phone in self.phones:
            self.stop_phone(phone)
        self.adb("kill-server", timeout=10)


def lab_or_reason(scratch: Path) -> AdbLab | str:
    from tfkit.bench.devices.adb import find_adb
    from tfkit.errors import ToolNotFoundError

    try:
        adb = find_adb()
    except ToolNotFoundError as e:
        return str(e)
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return (f"the stand-in phone needs user + mount namespaces (`unshare -Urm true` failed: "
                f"{probe.stderr.strip()}); run as root or enable unprivileged user namespaces")
    return AdbLab(scratch, adb)


@pytest.fixture(scope="session")
def adb_lab(tmp_path_factory):
    """The private adb server (ANDROID_ADB_SERVER_PORT points at it for the session)."""
    lab = lab_or_reason(tmp_path_factory.mktemp("adb_lab"))
    if isinstance(lab, str):
        need(lab)
    before = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(lab.server_port)
    started = lab.adb("start-server", timeout=30)
    if started.returncode != 0:
        need(f"the adb server did not start: {started.stderr.strip()}")
    try:
        yield lab
    finally:
        lab.close()
        if before is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = before


@pytest.fixture(scope="session")
def phone(adb_lab) -> Phone:
    """One connected, authorized stand-in Pixel 6 for the session."""
    return adb_lab.start_phone("phone")
