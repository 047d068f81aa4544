"""`tfkit flash ARTIFACT --device D [--list]` on this host ($HOME honoured) and on the real loopback
ssh board (tests/board.py): copied and sha256-checked, a rerun changes nothing, --list shows it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tfkit.cli.main import cli


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tflite(tmp_path_factory) -> Path:
    """A tiny real .tflite, and a `tfkit convert`-style folder holding it."""
    from tfkit._compat.keras import keras, tf

    K, TF = keras(), tf()
    x = K.Input(shape=(8, 8, 3), batch_size=1)
    model = K.Model(x, K.layers.Dense(3)(K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(4, 3)(x))))
    path = tmp_path_factory.mktemp("flash") / "tiny.tflite"
    path.write_bytes(TF.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_flash_to_this_host_copies_once_and_lists(tflite, tmp_path):
    env = {"HOME": str(tmp_path / "home")}
    first = invoke("flash", tflite, "--device", "local", env=env)
    assert first.exit_code == 0 and first.output.startswith("copied: tiny.tflite -> local:"), first.output
    placed = tmp_path / "home" / "tfkit" / "models" / "tiny" / "tiny.tflite"
    assert sha(placed) == sha(tflite) and sha(tflite)[:12] in first.output
    mtime = placed.stat().st_mtime_ns
    again = invoke("flash", tflite, "--device", "local", env=env)
    assert again.exit_code == 0 and again.output.startswith("already there:"), again.output
    assert placed.stat().st_mtime_ns == mtime
    placed.write_bytes(b"damaged")  # a file that is not the model any more is replaced
    fixed = invoke("flash", tflite, "--device", "local", "--name", "tiny", env=env)
    assert fixed.output.startswith("copied:") and sha(placed) == sha(tflite)
    listing = invoke("flash", "--list", "--device", "local", env=env)
    lines = listing.output.splitlines()
    assert lines[0].split() == ["NAME", "FILE", "SIZE", "SHA256"]
    assert lines[1].split()[0:2] == ["tiny", "tiny.tflite"] and lines[1].split()[-1] == sha(tflite)[:12]
    assert not list(placed.parent.glob("*.part*"))


def test_flash_a_convert_folder_names_it_by_family_and_precision(tflite, tmp_path):
    from tfkit.artifacts import MANIFEST, Manifest
    from tfkit.types import ArtifactKind

    folder = tmp_path / "05-convert-int8"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(tflite.read_bytes())
    spec = {"model": {"family": "tsm"}, "precision": "int8"}
    manifest = Manifest(kind=ArtifactKind.TFLITE_MODEL, files={"model": "model.tflite"}, spec=spec)
    (folder / MANIFEST).write_text(manifest.to_json())
    result = invoke("flash", folder, "--device", "local", env={"HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "tfkit" / "models" / "tsm-int8" / "model.tflite").is_file()


@pytest.mark.parametrize("args, needle", [
    (["--device", "local"], "Missing ARTIFACT"),
    (["NOFILE", "--device", "local"], "no such file or folder"),
    (["JUNK", "--device", "local"], "not a TFLite flatbuffer"),
    (["TFLITE", "--device", "local", "--name", "../up"], "--name '../up'"),
    (["TFLITE", "--device", "ssh:"], "Bad device address"),
])
def test_flash_bad_input_is_one_error_line(tflite, tmp_path, args, needle):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    args = [{"NOFILE": tmp_path / "none.tflite", "JUNK": junk, "TFLITE": tflite}.get(a, a) for a in args]
    result = CliRunner().invoke(cli, ["flash", *map(str, args)], env={"HOME": str(tmp_path / "home")})
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in result.output and "Traceback" not in result.output, result.output


def test_flash_to_the_ssh_board(board, tflite, tmp_path, request):
    devices = board.devices_yaml(tmp_path / "devices.yaml")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    (tmp_path / "xdg" / "tfkit").mkdir(parents=True)
    (tmp_path / "xdg" / "tfkit" / "devices.yaml").write_text(devices.read_text())
    import shutil
    import uuid

    name = f"tiny-{uuid.uuid4().hex[:8]}"  # the board's home outlives test sessions: a name no run used
    placed = board.parts.home / "tfkit" / "models" / name / "tiny.tflite"  # the board user's own $HOME
    request.addfinalizer(lambda: shutil.rmtree(placed.parent, ignore_errors=True))
    first = invoke("flash", tflite, "--device", "board", "--name", name, env=env)
    assert first.exit_code == 0 and first.output.startswith("copied:"), first.output
    assert sha(placed) == sha(tflite) and placed.stat().st_uid == board.parts.uid
    again = invoke("flash", tflite, "--device", "board", "--name", name, env=env)
    assert again.output.startswith("already there:"), again.output
    listing = invoke("flash", "--list", "--device", "board", env=env)
    row = next(line.split() for line in listing.output.splitlines() if line.startswith(name + " "))
    assert row[1] == "tiny.tflite" and row[-1] == sha(tflite)[:12]
