"""`tfkit flash`: put a converted model where it will run, `~/tfkit/models/<name>/` on the device.

The copy is checked by sha256 on the device; a rerun with the same file changes nothing; `--list`
shows what is already there. The same code serves every device: it talks to the device's transport
(`local` is this host, honouring $HOME). On a phone (`adb:SERIAL`) the model goes into the tfkit demo
app's model folder (its external files folder, `/sdcard/Android/data/tfkit.demo/files/models/<name>/`,
which the app lists); `--apk FILE` installs the app first; without the app it goes to
/data/local/tmp/tfkit/models/<name>/ and the command says so.

Example:
    $ tfkit flash out/05-convert-int8 --device ssh:pi@raspberrypi.local
    copied: model.tflite -> ssh:pi@raspberrypi.local:/home/pi/tfkit/models/tsm-int8/model.tflite (79.7 KB, sha256 1f3a9c0e2b7d checked there)
    $ tfkit flash out/05-convert-int8 --device adb:R5CR1234ABC --apk app-debug.apk
    $ tfkit flash --list --device ssh:pi@raspberrypi.local
"""
from __future__ import annotations

import re
from pathlib import Path

import click

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def _model_file(artifact: Path) -> tuple[Path, str]:
    """(the .tflite file, its default name) of a .tflite file or a `tfkit convert` folder."""
    from tfkit.cli.common import HOW_TFLITE, load_artifact
    from tfkit.errors import InputPathError
    from tfkit.steps.bench import artifact_label, tflite_file_artifact
    from tfkit.types import ArtifactKind

    how = f"pass a .tflite file, or {HOW_TFLITE}"
    if artifact.is_dir():
        if not (artifact / "manifest.json").is_file():
            raise InputPathError(f"{artifact} is a folder but not a tfkit artifact (no manifest.json); {how}")
        art = load_artifact(artifact, ArtifactKind.TFLITE_MODEL, how=how)
        return Path(art.file("model")), artifact_label(art)
    if not artifact.is_file():
        raise InputPathError(f"{artifact}: no such file or folder; {how}")
    art = tflite_file_artifact(artifact)  # parsed in a child process first: a corrupt file is one error line
    return Path(art.file("model")), artifact.stem


def _transport(device):
    """The device's transport and python (its sha256 fallback)."""
    from tfkit.bench.devices.local import LocalDevice
    from tfkit.bench.devices.remote import RemoteDevice
    from tfkit.bench.devices.transport import LocalTransport
    from tfkit.errors import UnsupportedDeviceError

    if isinstance(device, RemoteDevice):
        return device.transport, device.python
    if isinstance(device, LocalDevice):
        return LocalTransport(), device.python
    raise UnsupportedDeviceError(f"{device.name}: this device kind has no way to copy files; tfkit flash works on "
                                 "local, ssh: and adb: devices.")


def _phone_folder(device, apk: Path | None) -> tuple[str, str | None]:
    """(the models folder on the phone, a note for the user): the demo app's when it is installed
    (after installing `apk`), else /data/local/tmp/tfkit/models with why."""
    from tfkit.bench.devices.phone import APP_FILES, PHONE_WORKDIR
    from tfkit.bench.devices.transport import TransportError
    from tfkit.errors import BenchmarkError

    try:
        if apk is not None:
            device.transport.install(apk)
            click.echo(f"installed: {apk.name} on {device.transport.label}")
        installed = device.app_installed()
    except TransportError as e:
        raise BenchmarkError(str(e)) from None
    if installed:
        return f"{APP_FILES.format(package=device.app_package)}/models", None
    return f"{PHONE_WORKDIR}/models", (f"the tfkit demo app ({device.app_package}) is not installed on "
                                       f"{device.transport.label}, so the model went to {PHONE_WORKDIR}/models; "
                                       "install the app with --apk FILE (android_demo/README.md builds it) and "
                                       "flash again to put it in the app's model folder")


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MB"


@click.command("flash")
@click.argument("artifact", type=click.Path(path_type=Path), required=False)
@click.option("--device", required=True, help="Where to put it: local, ssh:[USER@]HOST[:PORT], or a devices.yaml name.")
@click.option("--name", default=None, help="Folder name under ~/tfkit/models (default: the model family and "
                                           "precision of a convert folder, else the file's name).")
@click.option("--list", "list_only", is_flag=True, help="Show the models already on the device instead.")
@click.option("--apk", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="adb phones: install this tfkit demo app APK first (adb install -r).")
def flash(artifact: Path | None, device: str, name: str | None, list_only: bool, apk: Path | None):
    """Copy ARTIFACT (a .tflite file or a `tfkit convert` folder) to ~/tfkit/models/<name>/ on the device
    (on a phone: the demo app's model folder), checked by sha256 there; a rerun with the same file
    changes nothing. --list shows what is there."""
    from tfkit.bench.devices.kinds import open_device
    from tfkit.bench.devices.remote import MODELS_DIR, flashed
    from tfkit.bench.devices.remote import flash as put
    from tfkit.errors import UsageError

    if artifact is None and not list_only:
        raise UsageError("Missing ARTIFACT: the .tflite file or `tfkit convert` folder to copy (or --list to see "
                         "what the device holds).")
    if list_only and (artifact is not None or name is not None):
        raise UsageError("--list takes only --device: it shows what the device holds.")
    if name is not None and not _NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits and _ . + - (it becomes a folder on the device).")
    from tfkit.bench.devices.phone import AdbDevice

    target = open_device(device)
    transport, python = _transport(target)
    root, note = None, None
    if isinstance(target, AdbDevice):
        root, note = _phone_folder(target, apk)
    elif apk is not None:
        raise UsageError(f"--apk installs the demo app on a phone (adb:SERIAL); {device} is not one.")
    if list_only:
        rows = flashed(transport, root=root)
        if note:
            click.echo(f"note: {note}")
        if not rows:
            click.echo(f"{transport.label}: no models in {root or '~/' + MODELS_DIR}")
            return
        width = max(len(r["name"]) for r in rows)
        file_width = max(len(r["file"]) for r in rows)
        click.echo(f"{'NAME':<{width}}  {'FILE':<{file_width}}  {'SIZE':>9}  SHA256")
        for r in rows:
            click.echo(f"{r['name']:<{width}}  {r['file']:<{file_width}}  {_size(r['size_bytes']):>9}  "
                       f"{(r['sha256'] or '-')[:12]}")
        return
    model, default_name = _model_file(artifact)
    name = name or re.sub(r"[^A-Za-z0-9_.+-]", "_", default_name)
    done = put(transport, model, name, python=python, root=root)
    what = f"{model.name} -> {transport.label}:{done['path']} ({_size(done['size_bytes'])}, sha256 {done['sha256'][:12]}"
    click.echo(f"copied: {what} checked there)" if done["copied"] else f"already there: {what}), nothing copied")
    if note:
        click.echo(f"note: {note}")
