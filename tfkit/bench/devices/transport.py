"""How bytes and commands travel to a device: the one interface a remote device runs over.

A Transport runs an argv on the device (`exec`), copies a file there (`push`) and back (`pull`).
`ssh.py` is one transport (the system OpenSSH client); adb will be another. Everything above it
(staging, caching, running the benchmark, flashing) lives in `remote.py` and never asks which one.

Failures are typed, so the layer above can decide what to retry and what to tell the user:
- `ConnectionLost`: the link dropped or could not be set up again (ssh exit 255): retried once;
- `Unreachable`: the device cannot be reached at all (refused, no route, unknown host, timeout);
- `AuthFailed`: the device answered but refused the key;
- `TimedOut`: the command did not finish in time (not retried: it would hang again);
- `CommandFailed`: the link is fine, the command on the device failed (its exit code and stderr);
- `DeviceDiskFull`: the device has no space left where a file was being written.
All are BenchmarkErrors, so a batch of models keeps the results already measured.

Example:
    >>> rc, out, err = transport.exec(["uname", "-m"], timeout=10)   # doctest: +SKIP
    >>> out.strip()
    'aarch64'
"""
from __future__ import annotations

import abc
import os
import subprocess
from dataclasses import dataclass

from tfkit.errors import BenchmarkError


class TransportError(BenchmarkError):
    """A device transport failed; `label` is the device, `phase` what was being done (connect, push, run, pull)."""

    def __init__(self, message: str, *, label: str = "", phase: str = "", detail: str = ""):
        super().__init__(message)
        self.label, self.phase, self.detail = label, phase, detail


class ConnectionLost(TransportError):
    """The link to the device dropped (or could not be set up again); worth one retry."""


class Unreachable(ConnectionLost):
    """The device did not answer at all: refused, unknown host, no route, timed out."""


class AuthFailed(TransportError):
    """The device answered but refused the credentials (a bad or missing key); retrying cannot help."""


class TimedOut(TransportError):
    """The command did not finish in time (the link itself still answered keep-alives): not retried."""


class CommandFailed(TransportError):
    """The command ran on the device and failed; `rc` and `detail` (its stderr) say how."""

    def __init__(self, message: str, *, rc: int, **kw):
        super().__init__(message, **kw)
        self.rc = rc


class DeviceDiskFull(CommandFailed):
    """The device ran out of space while a file was written there."""


@dataclass(frozen=True)
class Completed:
    """What a command on the device did: exit code, stdout and stderr (decoded, bad bytes replaced)."""

    rc: int
    stdout: str
    stderr: str

    def __iter__(self):  # rc, out, err = transport.exec(...)
        return iter((self.rc, self.stdout, self.stderr))


def tail(text: str, lines: int = 3) -> str:
    """The last few non-empty lines of a device's output, on one line (for error messages)."""
    kept = [line.strip() for line in (text or "").strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


def decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


class Transport(abc.ABC):
    """Commands and files to and from one device. Paths are as the device sees them; argv items
    are passed through unchanged (quoted by the transport, never interpreted by a host shell)."""

    #: what errors call the device, e.g. "ssh:pi@board"
    label: str = "device"

    @abc.abstractmethod
    def exec(self, argv: list[str], *, timeout: float, input_path: str | os.PathLike | None = None) -> Completed:
        """Run `argv` on the device (stdin: the file `input_path`, else nothing) and return its
        exit code and output. Raises ConnectionLost/Unreachable/AuthFailed when the link fails;
        a non-zero exit of the command itself is returned, not raised."""

    def shell(self, script: str, *args: str, timeout: float,
              input_path: str | os.PathLike | None = None) -> Completed:
        """Run a POSIX sh `script` on the device with positional parameters `args` ($1, $2, ...):
        values travel as arguments, never spliced into the script's text."""
        return self.exec(["sh", "-c", script, "sh", *args], timeout=timeout, input_path=input_path)

    def push(self, local_path: str | os.PathLike, remote_path: str, *, timeout: float = 600.0) -> None:
        """Copy a local file to `remote_path` (its folder must exist): written to a temporary name
        beside it, then renamed, so a broken copy never sits under the real name."""
        done = self.shell('tmp="$1.tmp.$$"; cat > "$tmp" && mv -f "$tmp" "$1" || { rc=$?; rm -f "$tmp"; exit $rc; }',
                          remote_path, timeout=timeout, input_path=local_path)
        if done.rc != 0:
            raise write_failure(self.label, remote_path, done, phase="push")

    def pull(self, remote_path: str, local_path: str | os.PathLike, *, timeout: float = 600.0) -> None:
        """Copy `remote_path` from the device to `local_path` (written whole or not at all)."""
        local_path = os.fspath(local_path)
        tmp = f"{local_path}.tmp.{os.getpid()}"
        with open(tmp, "wb") as sink:
            rc, _, err = self._exec_to(["cat", remote_path], sink, timeout=timeout)
        if rc != 0:
            os.unlink(tmp)
            raise CommandFailed(f"{self.label}: cannot read {remote_path} there: {tail(err)}.", rc=rc,
                                label=self.label, phase="pull", detail=err)
        os.replace(tmp, local_path)

    @abc.abstractmethod
    def _exec_to(self, argv: list[str], sink, *, timeout: float) -> tuple[int, str, str]:
        """Run argv with its stdout going, byte for byte, to the binary file `sink`: (rc, "", stderr)."""

    def close(self) -> None:
        """Release what the transport holds (a shared connection); it reconnects when used again."""


DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "File too large", "File size limit exceeded")


def write_failure(label: str, remote_path: str, done: Completed, *, phase: str) -> CommandFailed:
    """The error for a failed write on the device: a full disk says so and what to free."""
    if any(w.lower() in done.stderr.lower() for w in DISK_FULL_WORDS) or done.rc in (128 + 25, -25):  # SIGXFSZ
        folder = os.path.dirname(remote_path)
        return DeviceDiskFull(
            f"{label}: the device disk is full: writing {remote_path} failed ({tail(done.stderr)}). Free space in "
            f"{folder} on the device (`df -h {folder}` there; old cached models can go: tfkit keeps them under "
            "~/.cache/tfkit/blobs), or point devices.yaml `workdir:` at a bigger disk.",
            rc=done.rc, label=label, phase=phase, detail=done.stderr)
    return CommandFailed(f"{label}: writing {remote_path} on the device failed (exit {done.rc}): {tail(done.stderr)}.",
                         rc=done.rc, label=label, phase=phase, detail=done.stderr)


def run_local(argv: list[str], *, timeout: float, input_path=None, stdout=subprocess.PIPE) -> tuple[int, bytes, bytes]:
    """Run a host-side client program (ssh, adb) without a shell: (rc, stdout, stderr).
    Raises TimeoutExpired after killing it; OSError when the program is missing."""
    with open(input_path, "rb") if input_path is not None else open(os.devnull, "rb") as stdin:
        proc = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, check=False)
    return proc.returncode, proc.stdout if stdout is subprocess.PIPE else b"", proc.stderr


class LocalTransport(Transport):
    """This host as a transport (argv run directly, never through a host shell): what `tfkit flash
    --device local` copies through, so flashing is written once for every device."""

    label = "local"

    def exec(self, argv, *, timeout, input_path=None) -> Completed:
        try:
            rc, out, err = run_local([str(a) for a in argv], timeout=timeout, input_path=input_path)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"local: `{argv[0]}` did not finish within {timeout:g} s.", label=self.label) from None
        except OSError as e:
            return Completed(127, "", f"{argv[0]}: {e}")
        return Completed(rc, decode(out), decode(err))

    def _exec_to(self, argv, sink, *, timeout):
        try:
            rc, _, err = run_local([str(a) for a in argv], timeout=timeout, stdout=sink)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"local: `{argv[0]}` did not finish within {timeout:g} s.", label=self.label) from None
        return rc, "", decode(err)
