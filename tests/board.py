"""A real Linux board for the tests: Debian's OpenSSH server on a free loopback port, unprivileged.

What runs: /usr/sbin/sshd as the dedicated user `tfkit-board` (when the tests run as root; else as
the current user), with a generated host key and client key, public keys only (no PAM, no
passwords). The key's `environment="PATH=..."` makes the board's `python3` a venv with
tflite-runtime 2.14 and numpy<2 (made once by .ci/run in that user's home). tfkit reaches it through
the system `ssh` with a client config file (`ssh -F`, devices.yaml `ssh_config:`), as a user would.

With CI=true a missing part (sshd, the board user, the venv) fails the test; otherwise it skips
with the reason.

Example:
    def test_x(board):
        devices = board.devices_yaml(tmp_path / "devices.yaml")   # names the device `board`
        open_device("board", devices_file=devices).run(model)
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
BOARD_USER = "tfkit-board"
BOARD_VENV = "venv-tflite-runtime"


def need(why: str):
    """Skip with the reason, or under CI (CI=true) fail: the board tests must not vanish quietly."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (.ci/run sets the board up)")
    pytest.skip(why)


@dataclass(frozen=True)
class Parts:
    user: str
    uid: int
    gid: int
    home: Path
    python: Path  # the board venv's python (tflite-runtime 2.14, numpy<2)


def _as_user(parts_user: str, argv: list[str]) -> list[str]:
    if os.getuid() != 0:
        return argv
    return ["setpriv", f"--reuid={parts_user}", f"--regid={parts_user}", "--init-groups", "--reset-env", *argv]


def board_parts() -> Parts | str:
    """The board's parts, or why they are missing."""
    if not Path(SSHD).is_file():
        return f"{SSHD} is missing: apt-get install -y openssh-server"
    for tool in ("ssh", "ssh-keygen", *(["setpriv"] if os.getuid() == 0 else [])):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing on this host"
    name = BOARD_USER if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return f"the board user {name!r} does not exist: useradd --create-home --shell /bin/sh {name}"
    python = Path(os.environ.get("TFKIT_BOARD_PYTHON") or Path(entry.pw_dir) / BOARD_VENV / "bin" / "python")
    probe = subprocess.run(_as_user(name, [str(python), "-c", "import tflite_runtime, numpy"]), capture_output=True,
                           text=True, check=False, cwd="/")
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return (f"the board venv {python} cannot import tflite_runtime and numpy ({last}): make it from /usr/bin/python3 "
                "with pip install tflite-runtime==2.14.0 'numpy<2'")
    return Parts(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), python)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """pid's child processes, grandchildren, ... (read from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class Board:
    """One running sshd. `alias` is its Host in `ssh_config`; `address` is `ssh:ALIAS`."""

    parts: Parts
    home: Path  # the server's folder (keys, config, log), owned by the board user
    client: Path  # this side's folder: client key, ssh config, known_hosts
    port: int
    alias: str
    proc: subprocess.Popen | None = None
    extra_env: dict = field(default_factory=dict)

    @property
    def ssh_config(self) -> Path:
        return self.client / "ssh_config"

    @property
    def address(self) -> str:
        return f"ssh:{self.alias}"

    def devices_yaml(self, path: Path, *, name: str = "board", **options) -> Path:
        """A devices.yaml naming this board `name`, plus options (python, workdir, identity_file...)."""
        lines = ["devices:", f"  {name}:", f"    address: {self.address}", f"    ssh_config: {self.ssh_config}"]
        options.setdefault("workdir", str(self.home / "cache"))
        lines += [f"    {k}: {v}" for k, v in options.items() if v is not None]
        path.write_text("\n".join(lines) + "\n")
        return path

    def kill(self) -> None:
        """Kill sshd and every session it serves (what a board losing power or its network does)."""
        if self.proc is None:
            return
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc = None

    def kill_sessions(self) -> None:
        """Kill every session sshd serves, not sshd itself (a dropped link to a board still up)."""
        if self.proc is None:
            return
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.client, ignore_errors=True)


def start_board(parts: Parts, *, prlimit_fsize: int | None = None) -> Board:
    """A fresh sshd for `parts` on a free port; the caller stops it."""
    home = Path(tempfile.mkdtemp(prefix="tfkit-board-"))
    client = Path(tempfile.mkdtemp(prefix="tfkit-board-client-"))
    port = free_port()
    alias = f"tfkit-board-{port}"
    host_pub = _keygen(home / "host_key", "board host key")
    client_pub = _keygen(client / "id_ed25519", "tfkit tests")
    path = f"{parts.python.parent}:/usr/local/bin:/usr/bin:/bin"
    (home / "authorized_keys").write_text(f'environment="PATH={path}" {client_pub}\n')
    (home / "cache").mkdir()
    (home / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {home / 'host_key'}", f"PidFile {home / 'sshd.pid'}",
        f"AuthorizedKeysFile {home / 'authorized_keys'}", "PermitUserEnvironment yes", "UsePAM no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "StrictModes no",
        "MaxSessions 64", "MaxStartups 64", "LogLevel ERROR", "Subsystem sftp internal-sftp", ""]))
    (client / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    (client / "ssh_config").write_text("\n".join([
        f"Host {alias}", "  HostName 127.0.0.1", f"  Port {port}", f"  User {parts.user}",
        f"  IdentityFile {client / 'id_ed25519'}", "  IdentitiesOnly yes", f"  UserKnownHostsFile {client / 'known_hosts'}",
        "  StrictHostKeyChecking yes", ""]))
    if os.getuid() == 0:
        for p in [home, *home.rglob("*")]:
            os.chown(p, parts.uid, parts.gid)
    os.chmod(home, 0o755)
    board = Board(parts, home, client, port, alias)
    argv = [SSHD, "-D", "-e", "-f", str(home / "sshd_config")]
    if prlimit_fsize is not None:
        argv = ["prlimit", f"--fsize={prlimit_fsize}", *argv]
    with open(home / "sshd.log", "ab") as log:
        board.proc = subprocess.Popen(_as_user(parts.user, argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      cwd="/", start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if board.proc.poll() is not None:
            text = (home / "sshd.log").read_text(errors="replace")
            board.stop()
            raise RuntimeError(f"sshd exited at start ({board.proc and board.proc.returncode}): {text.strip()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return board
        except OSError:
            time.sleep(0.05)
    board.stop()
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within 15 s")


@pytest.fixture(scope="session")
def board_parts_or_skip() -> Parts:
    parts = board_parts()
    if isinstance(parts, str):
        need(parts)
    return parts


@pytest.fixture(scope="session")
def board(board_parts_or_skip):
    """A real sshd board for the whole session, killed at the end."""
    running = start_board(board_parts_or_skip)
    try:
        yield running
    finally:
        running.stop()
