"""Device addresses, parsed in one place: `local`, `ssh:[USER@]HOST[:PORT]`, `adb[:SERIAL]`, a
third-party kind `KIND[:TARGET]`, or the NAME of a device in devices.yaml (see config.py).

Every command that takes `--device` goes through `parse_address`, so the accepted forms, and the
error that lists them, are the same everywhere.

Example:
    >>> parse_address("ssh:pi@raspberrypi.local:2222")
    DeviceAddress(kind='ssh', host='raspberrypi.local', user='pi', port=2222, serial=None, name=None, target=None)
    >>> str(parse_address("ssh:[::1]:22"))
    'ssh:[::1]:22'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tfkit.errors import UnknownNameError, UsageError

BUILTIN_KINDS = ("local", "ssh", "adb")
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
# A host name or an IPv4 address; IPv6 goes in brackets, as ssh and URLs write it.
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# adb serials: USB serials, `emulator-5554`, `192.168.1.5:5555` for adb over Wi-Fi.
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")

FORMS = ("local", "ssh:[USER@]HOST[:PORT]  (IPv6: ssh:[::1]:2222)", "adb[:SERIAL]",
         "NAME  (a device in devices.yaml)")


@dataclass(frozen=True)
class DeviceAddress:
    """Where a benchmark runs. `name` is the devices.yaml entry the address came from, if any;
    `target` is the part after `KIND:` for third-party kinds, which parse it themselves."""

    kind: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    serial: str | None = None
    name: str | None = None
    target: str | None = None

    def __str__(self) -> str:
        if self.kind == "ssh":
            host = f"[{self.host}]" if self.host and ":" in self.host else self.host
            return f"ssh:{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port else ''}"
        if self.kind == "adb":
            return f"adb:{self.serial}" if self.serial else "adb"
        return f"{self.kind}:{self.target}" if self.target else self.kind

    @property
    def label(self) -> str:
        """What results and listings call the device: its name, else its address."""
        return self.name or str(self)


def malformed(text: object, why: str, *, names=()) -> UsageError:
    """The one error for an address that cannot be used: why, then every accepted form."""
    forms = "; ".join(FORMS)
    configured = f" Configured names: {', '.join(sorted(names))}." if names else ""
    return UsageError(f"Bad device address {text!r}: {why}. Accepted forms: {forms}.{configured}")


def parse_address(text: str, *, names=None, plugin_kinds=()) -> DeviceAddress:
    """Parse an address. A bare NAME is looked up in `names` (a mapping name -> DeviceAddress, from
    devices.yaml); `plugin_kinds` are third-party kinds (`KIND` or `KIND:TARGET`)."""
    if not isinstance(text, str) or not text.strip():
        raise malformed(text, "it is empty" if isinstance(text, str) else "it is not a string", names=names or ())
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if kind == "local":
        if sep:
            raise malformed(text, "`local` takes nothing after it", names=names or ())
        return DeviceAddress("local")
    if kind == "ssh":
        return _ssh(text, rest, names or ())
    if kind == "adb":
        if sep and not _SERIAL.fullmatch(rest):
            raise malformed(text, f"{rest!r} is not an adb serial (as `adb devices` lists them)", names=names or ())
        return DeviceAddress("adb", serial=rest or None)
    if kind in plugin_kinds:
        if sep and not rest:
            raise malformed(text, f"nothing after `{kind}:`", names=names or ())
        return DeviceAddress(kind, target=rest or None)
    if not sep and NAME_PATTERN.fullmatch(text):
        if names and text in names:
            return replace(names[text], name=text)
        # An unknown name says "did you mean" like every registry lookup, then the accepted forms.
        error = UnknownNameError("device", text, ["local", "adb", *plugin_kinds, *(names or ())])
        where = "No devices.yaml entry has that name" if names else "No devices.yaml defines named devices"
        error.args = (f"{error.args[0]} {where}. Accepted forms: {'; '.join(FORMS)}.",)
        raise error
    known = [*BUILTIN_KINDS, *plugin_kinds]
    raise malformed(text, f"unknown device kind {kind!r} (known: {', '.join(known)})", names=names or ())


def _ssh(text: str, rest: str, names) -> DeviceAddress:
    user, at, hostport = rest.rpartition("@")
    if at and not _USER.fullmatch(user):
        raise malformed(text, f"{user!r} is not a user name", names=names)
    if hostport.startswith("["):  # [IPv6] or [IPv6]:PORT
        host, close, after = hostport[1:].partition("]")
        if not close or not _IPV6.fullmatch(host):
            raise malformed(text, "an IPv6 host goes in brackets: ssh:[::1] or ssh:[::1]:2222", names=names)
        if after and not after.startswith(":"):
            raise malformed(text, f"unexpected {after!r} after the bracketed host", names=names)
        port_text = after[1:] if after else None
    else:
        host, colon, port_text = hostport.partition(":")
        port_text = port_text if colon else None
        if ":" in (port_text or ""):
            raise malformed(text, "an IPv6 host goes in brackets: ssh:[::1]:2222", names=names)
        if not host:
            raise malformed(text, "no host after `ssh:`", names=names)
        if not _HOST.fullmatch(host):
            raise malformed(text, f"{host!r} is not a host name", names=names)
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise malformed(text, f"port {port_text!r} is not a number from 1 to 65535", names=names)
        port = int(port_text)
    return DeviceAddress("ssh", host=host, user=user or None, port=port)
