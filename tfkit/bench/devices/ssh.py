"""Linux boards over ssh (Raspberry Pi, Coral Dev Board, Jetson): the system OpenSSH client as a Transport.

The user's own `ssh` runs every command, so ~/.ssh/config, keys, the agent and ProxyJump work as
they do in a terminal. tfkit adds only: BatchMode (never a password prompt), a connect timeout,
keep-alives (a dead link is noticed in seconds), and a shared connection (ControlMaster, socket
under /tmp) so the many small commands of a benchmark cost milliseconds each.

devices.yaml options for ssh devices (besides python, threads, runtime, ...):
    ssh_config: ~/boards/ssh_config   # passed as `ssh -F FILE`
    identity_file: ~/.ssh/id_pi       # passed as `ssh -i FILE`
    workdir: /data/tfkit              # the board's cache folder (default ~/.cache/tfkit)

Example:
    >>> t = SshTransport("raspberrypi.local", user="pi")
    >>> t.exec(["uname", "-m"], timeout=10).stdout   # doctest: +SKIP
    'aarch64\\n'
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from tfkit.bench.devices.base import DEVICES
from tfkit.bench.devices.remote import RemoteDevice
from tfkit.bench.devices.transport import (
    AuthFailed,
    Completed,
    ConnectionLost,
    TimedOut,
    Transport,
    TransportError,
    Unreachable,
    decode,
    run_local,
    tail,
)
from tfkit.errors import ToolNotFoundError

CONNECT_TIMEOUT_S = 10
CONTROL_PERSIST_S = 60
# Short, per-user: a unix socket path must stay under ~100 bytes; %C is a hash of host, port and user.
CONTROL_PATH = "/tmp/tfkit-ssh-{uid}-%C"

# ssh's own words (exit 255), most specific first: what kind of failure each means.
_AUTH = ("Permission denied", "Too many authentication failures", "no mutual signature", "Host key verification failed",
         "REMOTE HOST IDENTIFICATION HAS CHANGED", "Load key", "invalid format", "bad permissions")
_UNREACHABLE = ("Could not resolve hostname", "Name or service not known", "Temporary failure in name resolution",
                "Connection refused", "No route to host", "Network is unreachable", "Connection timed out",
                "Operation timed out", "timed out during banner exchange", "Host is down")


class SshTransport(Transport):
    """Commands and files over the system `ssh` client; argv items are quoted with shlex, so the
    board's shell sees each one as a single word."""

    def __init__(self, host: str, *, user: str | None = None, port: int | None = None,
                 ssh_config: str | os.PathLike | None = None, identity_file: str | os.PathLike | None = None,
                 connect_timeout: int = CONNECT_TIMEOUT_S, label: str | None = None):
        self.host, self.user, self.port = host, user, port
        self.ssh_config = os.path.expanduser(os.fspath(ssh_config)) if ssh_config else None
        self.identity_file = os.path.expanduser(os.fspath(identity_file)) if identity_file else None
        self.connect_timeout = connect_timeout
        target = f"[{host}]" if ":" in host else host
        self.label = label or f"ssh:{user + '@' if user else ''}{target}{f':{port}' if port else ''}"

    def base_argv(self) -> list[str]:
        ssh = shutil.which("ssh")
        if ssh is None:
            raise ToolNotFoundError(f"{self.label}: the OpenSSH client `ssh` is not installed on this host; install it "
                                    "(Debian/Ubuntu: apt-get install openssh-client).")
        argv = [ssh]
        if self.ssh_config:
            argv += ["-F", self.ssh_config]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                 "-o", "ControlMaster=auto", "-o", f"ControlPath={CONTROL_PATH.format(uid=os.getuid())}",
                 "-o", f"ControlPersist={CONTROL_PERSIST_S}", "-o", "LogLevel=ERROR", "-T"]
        if self.identity_file:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        return [*argv, "--", self.host]

    def exec(self, argv, *, timeout, input_path=None) -> Completed:
        rc, out, err = self._ssh(argv, timeout=timeout, input_path=input_path)
        return Completed(rc, decode(out), decode(err))

    def _exec_to(self, argv, sink, *, timeout):
        rc, _, err = self._ssh(argv, timeout=timeout, stdout=sink)
        return rc, "", decode(err)

    def _ssh(self, argv, *, timeout, input_path=None, stdout=subprocess.PIPE):
        command = [*self.base_argv(), shlex.join(str(a) for a in argv)]
        try:
            rc, out, err = run_local(command, timeout=timeout, input_path=input_path, stdout=stdout)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"{self.label}: the command there did not finish within {timeout:g} s and was abandoned "
                           "(a hung runner, or a very slow model): raise the timeout or lower the runs.",
                           label=self.label, detail="timeout") from None
        except OSError as e:
            raise ToolNotFoundError(f"{self.label}: cannot start ssh: {e}.") from None
        if rc == 255:  # ssh's own failure (a command that exits 255 itself reads the same; runner.py never does)
            raise self.classify(decode(err))
        return rc, out, err

    def classify(self, stderr: str) -> TransportError:
        """The typed error for ssh's exit 255, from its own words."""
        words = tail(stderr)
        if any(w.lower() in stderr.lower() for w in _AUTH):
            how = (f"IdentityFile {self.identity_file}" if self.identity_file else "your ssh keys / agent")
            return AuthFailed(f"{self.label}: ssh was refused ({words}). Check {how}: the public key must be in "
                              "~/.ssh/authorized_keys on the device (ssh-copy-id does it), and `ssh "
                              f"{self._hint_target()}` must log in without a password.",
                              label=self.label, phase="connect", detail=stderr)
        if any(w.lower() in stderr.lower() for w in _UNREACHABLE):
            return Unreachable(f"{self.label}: cannot reach the device ({words}). Check it is on, the host name and "
                               f"port, and that `ssh {self._hint_target()}` works from this host.",
                               label=self.label, phase="connect", detail=stderr)
        return ConnectionLost(f"{self.label}: the ssh connection dropped ({words}).", label=self.label, detail=stderr)

    def _hint_target(self) -> str:
        parts = [f"-F {shlex.quote(self.ssh_config)}"] if self.ssh_config else []
        parts += [f"-p {self.port}"] if self.port else []
        return " ".join([*parts, f"{self.user + '@' if self.user else ''}{self.host}"])

    def close(self) -> None:
        """Stop the shared connection, if one is up (best effort: it also times out by itself)."""
        try:
            base = self.base_argv()
            run_local([*base[:-2], "-O", "exit", "--", self.host], timeout=10)
        except (OSError, subprocess.TimeoutExpired, TransportError, ToolNotFoundError):
            pass


@DEVICES.register("ssh")
class SshDevice(RemoteDevice):
    """A Linux board reached with `ssh`: runner.py under the board's python (devices.yaml `python`,
    default python3), its files cached on the board by sha256."""

    @classmethod
    def from_address(cls, address, entry=None) -> SshDevice:
        transport = SshTransport(address.host, user=address.user, port=address.port,
                                 ssh_config=getattr(entry, "ssh_config", None),
                                 identity_file=getattr(entry, "identity_file", None),
                                 label=f"{address.name} ({address})" if address.name else str(address))
        return cls(transport, python=getattr(entry, "python", None) or "python3",
                   workdir=getattr(entry, "workdir", None), name=address.label)
