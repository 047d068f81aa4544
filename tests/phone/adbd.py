"""The phone side of adb (what adbd does), for the REAL adb client and server to talk to over loopback TCP.

The phone is the one true external boundary of the adb tests: there is no adbd for Linux in any
registry, so this stand-in speaks adbd's side of the wire protocol (AOSP packages/modules/adb):
- the CNXN handshake (no AUTH, like a phone with `ro.adb.secure=0`; or, with `--unauthorized`,
  AUTH tokens that are never accepted, like a phone whose owner has not tapped "Allow");
- streams: OPEN -> OKAY, WRTE acknowledged by OKAY, one WRTE in flight per stream, CLSE;
- `shell,v2,...:CMD` (shell protocol v2: stdout, stderr and the exit code apart; stdin packets),
  `shell:CMD` and `exec:CMD` (raw, stderr folded into stdout as adbd does);
- `sync:` STAT / LIST / SEND / RECV / DATA / DONE / OKAY / FAIL / QUIT (v1), with adbd's own FAIL
  words (file_sync_service.cpp: "write failed: <strerror>", "open failed: <strerror>").

Commands run under the host's /bin/sh, chrooted into the phone's root folder: the process runs in
its own user + mount namespace (`unshare -Urm`), where the host's /usr and /dev are bind-mounted
into that folder, so /data/local/tmp, /sys/... and /system/bin/getprop are the phone's own. What the
phone answers (getprop, dumpsys battery, sysfs files) comes from tests/data/phone/, recorded from
real devices (see its README.md); its `benchmark_model` (tests/phone/benchmark_model, pushed like the
real binary) replays LiteRT outputs from tests/data/benchmark_model. `--disk PATH:SIZE` mounts a real
tmpfs of SIZE there (a full /data/local/tmp fails with the kernel's ENOSPC); `--drop-after-bytes N`
closes the socket and stops the phone once N bytes of a push have arrived (the cable pulled mid-push).

Example:
    unshare -Urm python -m tests.phone.adbd --root /tmp/phone --port 15601 --ready /tmp/phone.ready
    adb -P 15037 connect 127.0.0.1:15601 && adb -P 15037 -s 127.0.0.1:15601 shell getprop ro.product.model
"""
from __future__ import annotations

import argparse
import asyncio
import os
import struct
import subprocess
import sys
from pathlib import Path

from tests.phone.rootfs import build_root, load_props, mount_host

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE = (
    int.from_bytes(tag, "little") for tag in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE"))
A_VERSION = 0x01000001  # no payload checksums
MAX_PAYLOAD = 1024 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
SYNC_DATA_MAX = 64 * 1024
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN = 0, 1, 2, 3, 4
PHONE_PATH = "/system/bin:/usr/bin:/bin"


def header(cmd: int, arg0: int, arg1: int, payload: bytes) -> bytes:
    return struct.pack("<6I", cmd, arg0, arg1, len(payload), 0, cmd ^ 0xFFFFFFFF)


class Stream:
    """One adb stream: bytes from the host arrive in `inbox`; `send` keeps one WRTE in flight."""

    def __init__(self, conn: Connection, local: int, remote: int):
        self.conn, self.local, self.remote = conn, local, remote
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.acked = asyncio.Event()
        self.acked.set()
        self.closed = False
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        for start in range(0, len(data), self.conn.max_payload):
            await self.acked.wait()
            if self.closed:
                raise ConnectionResetError("stream closed by the host")
            self.acked.clear()
            self.conn.write(A_WRTE, self.local, self.remote, data[start:start + self.conn.max_payload])
        await self.conn.drain()

    async def read_exact(self, n: int) -> bytes:
        """Exactly n bytes of what the host sent (requests arrive batched and split across WRTEs)."""
        while len(self.buffer) < n:
            chunk = await self.inbox.get()
            if chunk is None:
                raise EOFError
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.acked.set()
            self.conn.write(A_CLSE, self.local, self.remote, b"")
        self.conn.streams.pop(self.local, None)


class Connection:
    """One host connection (the adb server): handshake, then streams, each served by a task."""

    def __init__(self, phone: Phone, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.phone, self.reader, self.writer = phone, reader, writer
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.max_payload = 4096
        self.online = False

    def write(self, cmd: int, arg0: int, arg1: int, payload: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(header(cmd, arg0, arg1, payload) + payload)

    async def drain(self) -> None:
        if not self.writer.is_closing():
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                cmd, arg0, arg1, length, _, _ = struct.unpack("<6I", await self.reader.readexactly(24))
                payload = await self.reader.readexactly(length) if length else b""
                await self.handle(cmd, arg0, arg1, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for stream in list(self.streams.values()):
                stream.closed = True
                stream.acked.set()
                stream.inbox.put_nowait(None)
            self.writer.close()

    async def handle(self, cmd: int, arg0: int, arg1: int, payload: bytes) -> None:
        if cmd == A_CNXN:
            self.max_payload = min(arg1 or 4096, MAX_PAYLOAD)
            if self.phone.unauthorized:  # ask for a signature that will never be accepted
                self.write(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            else:
                self.online = True
                self.write(A_CNXN, A_VERSION, MAX_PAYLOAD, self.phone.banner().encode())
        elif cmd == A_AUTH:
            if arg0 == AUTH_SIGNATURE:  # not a key in /data/misc/adb/adb_keys: another token
                self.write(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            # AUTH_RSAPUBLICKEY: the "Allow USB debugging?" dialog waits for a tap that never comes
        elif not self.online:
            return
        elif cmd == A_OPEN:
            service = payload.rstrip(b"\0").decode("utf-8", "replace")
            handler = self.phone.service(service)
            if handler is None:
                self.write(A_CLSE, 0, arg0, b"")
                return
            stream = Stream(self, self.next_id, arg0)
            self.streams[stream.local] = stream
            self.next_id += 1
            self.write(A_OKAY, stream.local, arg0, b"")
            asyncio.ensure_future(self.run_service(handler, stream))
        elif cmd == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.inbox.put_nowait(payload)
                self.write(A_OKAY, arg1, arg0, b"")
        elif cmd == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.acked.set()
        elif cmd == A_CLSE:  # the host echoes our own CLSE too: unknown ids are ignored
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                stream.inbox.put_nowait(None)
                stream.close()
        await self.drain()

    async def run_service(self, handler, stream: Stream) -> None:
        try:
            await handler(stream)
        except (EOFError, ConnectionError):
            pass
        finally:
            stream.close()
            await self.drain()


class Phone:
    """The device: its root folder, its answers, and the faults it was asked to show."""

    def __init__(self, root: Path, *, unauthorized: bool = False, drop_after_bytes: int | None = None,
                 features: str = "shell_v2"):
        self.root, self.unauthorized, self.drop_after_bytes = root, unauthorized, drop_after_bytes
        self.features = features
        self.props = load_props(root / "system/etc/standin/getprop.txt")
        self.server: asyncio.AbstractServer | None = None
        self.pushed = 0

    def banner(self) -> str:
        keys = ("ro.product.name", "ro.product.model", "ro.product.device")
        return "device::" + "".join(f"{k}={self.props.get(k, '')};" for k in keys) + f"features={self.features}"

    def service(self, name: str):
        if name.startswith("sync:"):
            return self.sync
        if name.startswith(("shell", "exec:")):
            head, _, command = name.partition(":")
            options = head.split(",")[1:]
            v2 = "v2" in options and head.startswith("shell")
            return lambda stream: self.shell(stream, command, v2=v2)
        return None

    def _chroot(self) -> None:
        os.chroot(self.root)
        os.chdir("/")

    async def shell(self, stream: Stream, command: str, *, v2: bool) -> None:
        argv = ["/system/bin/sh", "-c", command] if command else ["/system/bin/sh"]
        env = {"PATH": PHONE_PATH, "HOME": "/", "TMPDIR": "/data/local/tmp", "ANDROID_DATA": "/data",
               "ANDROID_ROOT": "/system", "EXTERNAL_STORAGE": "/sdcard", "SHELL": "/system/bin/sh"}
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if v2 else subprocess.STDOUT, env=env, preexec_fn=self._chroot)

        async def pump(source, packet_id):
            while chunk := await source.read(SYNC_DATA_MAX):
                await stream.send(struct.pack("<BI", packet_id, len(chunk)) + chunk if v2 else chunk)

        async def feed():
            try:
                while True:
                    if v2:
                        packet_id, length = struct.unpack("<BI", await stream.read_exact(5))
                        data = await stream.read_exact(length) if length else b""
                        if packet_id == SHELL_CLOSE_STDIN:
                            break
                    else:
                        data = await stream.read_exact(1) + stream.buffer
                        stream.buffer = b""
                        packet_id = SHELL_STDIN
                    if packet_id == SHELL_STDIN and data:
                        proc.stdin.write(data)
                        await proc.stdin.drain()
            except (EOFError, ConnectionError):
                if not v2:
                    proc.kill() if proc.returncode is None else None
            finally:
                if not proc.stdin.is_closing():
                    proc.stdin.close()

        feeder = asyncio.ensure_future(feed())
        pumps = [pump(proc.stdout, SHELL_STDOUT)] + ([pump(proc.stderr, SHELL_STDERR)] if v2 else [])
        try:
            await asyncio.gather(*pumps)
            rc = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            feeder.cancel()
        if v2:  # adbd: a signal death reads as 128 + signal
            await stream.send(struct.pack("<BIB", SHELL_EXIT, 1, (128 - rc if rc < 0 else rc) & 0xFF))

    def local(self, path: str) -> Path:
        """The phone path as a path under the root folder (never above it)."""
        return self.root / os.path.normpath("/" + path).lstrip("/")

    async def sync(self, stream: Stream) -> None:
        while True:
            request, length = struct.unpack("<4sI", await stream.read_exact(8))
            path = (await stream.read_exact(length)).decode("utf-8", "replace")
            if request == b"QUIT":
                return
            if request == b"STAT":
                try:
                    st = os.lstat(self.local(path))
                    reply = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                except OSError:
                    reply = (0, 0, 0)
                await stream.send(struct.pack("<4s3I", b"STAT", *reply))
            elif request == b"LIST":
                await self.sync_list(stream, path)
            elif request == b"RECV":
                if not await self.sync_recv(stream, path):
                    return
            elif request == b"SEND":
                if not await self.sync_send(stream, path):
                    return
            else:
                await sync_fail(stream, f"unknown command {int.from_bytes(request, 'little'):08x}")
                return

    async def sync_list(self, stream: Stream, path: str) -> None:
        folder, out = self.local(path), b""
        try:
            names = [".", "..", *sorted(os.listdir(folder))]
        except OSError:
            names = []
        for name in names:
            try:
                st = os.lstat(folder / name)
            except OSError:
                continue
            raw = name.encode()
            out += struct.pack("<4s4I", b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw)) + raw
        await stream.send(out + struct.pack("<4s4I", b"DONE", 0, 0, 0, 0))

    async def sync_recv(self, stream: Stream, path: str) -> bool:
        try:
            source = open(self.local(path), "rb")  # noqa: ASYNC230, SIM115  (a local file; closed below)
        except OSError as e:
            await sync_fail(stream, f"open failed: {e.strerror}")
            return False
        with source:
            while chunk := source.read(SYNC_DATA_MAX - 8):
                await stream.send(struct.pack("<4sI", b"DATA", len(chunk)) + chunk)
        await stream.send(struct.pack("<4sI", b"DONE", 0))
        return True

    async def sync_send(self, stream: Stream, spec: str) -> bool:
        """adbd's handle_send_file: create, write each DATA, OKAY on DONE; on a failed write send
        FAIL with its strerror, read on until DONE, remove the partial file, close the stream."""
        path, _, mode = spec.rpartition(",")
        target = self.local(path)
        error = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() or target.is_symlink():
                target.unlink()
            sink = open(target, "wb")  # noqa: ASYNC230, SIM115  (kept open across DATA messages)
            os.chmod(target, (int(mode or "0644", 0) & 0o777) | 0o644)
        except OSError as e:
            error, sink = f"couldn't create file: {e.strerror}", None
            await sync_fail(stream, error)
        while True:
            kind, size = struct.unpack("<4sI", await stream.read_exact(8))
            if kind == b"DONE":
                break
            if kind != b"DATA":
                error = error or "invalid data message"
                await sync_fail(stream, error)
                break
            data = await stream.read_exact(size)
            self.pushed += size
            if self.drop_after_bytes is not None and self.pushed >= self.drop_after_bytes:
                stream.conn.writer.transport.abort()  # the cable is pulled: no FAIL, no CLSE
                self.server.close()
                raise EOFError
            if sink is not None and error is None:
                try:
                    sink.write(data)
                    sink.flush()
                except OSError as e:
                    error = f"write failed: {e.strerror}"
                    await sync_fail(stream, error)
        if sink is not None:
            try:
                sink.close()
            except OSError as e:
                if error is None:
                    error = f"write failed: {e.strerror}"
                    await sync_fail(stream, error)
        if error is not None:
            target.unlink(missing_ok=True)
            return False
        await stream.send(struct.pack("<4sI", b"OKAY", 0))
        return True


async def sync_fail(stream: Stream, reason: str) -> None:
    raw = reason.encode()
    await stream.send(struct.pack("<4sI", b"FAIL", len(raw)) + raw)


async def serve(phone: Phone, port: int, ready: Path | None) -> None:
    async def on_connect(reader, writer):
        await Connection(phone, reader, writer).serve()

    phone.server = await asyncio.start_server(on_connect, "127.0.0.1", port)
    if ready is not None:
        ready.write_text(str(port))
    try:
        await phone.server.serve_forever()
    except asyncio.CancelledError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the phone's file system (a temp folder)")
    parser.add_argument("--port", type=int, required=True, help="loopback TCP port (15555 or above)")
    parser.add_argument("--ready", type=Path, help="written once the port listens")
    parser.add_argument("--unauthorized", action="store_true", help="never accept the host's key")
    parser.add_argument("--drop-after-bytes", type=int, help="pull the cable after this many pushed bytes")
    parser.add_argument("--disk", action="append", default=[], help="PATH:SIZE tmpfs, e.g. /data/local/tmp:1m")
    parser.add_argument("--no-shell-v2", action="store_true", help="advertise no features, like Android < 7")
    parser.add_argument("--no-mount", action="store_true", help="the mounts are already in place")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    build_root(root)
    if not args.no_mount:
        mount_host(root, args.disk)
    phone = Phone(root, unauthorized=args.unauthorized, drop_after_bytes=args.drop_after_bytes,
                  features="" if args.no_shell_v2 else "shell_v2")
    # The phone's own commands may pull the cable (tests/phone/benchmark_model's `unplug`): kill this process.
    (root / "system/etc/standin/adbd.pid").write_text(f"{os.getpid()}\n")
    asyncio.run(serve(phone, args.port, args.ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
