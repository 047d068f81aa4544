"""`--device` on the commands that time models (structured, lowrank --latency-budget, convert
--keep-float): generated from the configs' `device` field, checked before any work, and recorded in
the step's metrics (tfkit.bench.timing)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tfkit.bench.devices.kinds import NOT_IMPLEMENTED
from tfkit.cli.main import cli

TIMING_COMMANDS = {
    "structured": ("structured", "StructuredConfig"),
    "lowrank": ("lowrank --latency-budget 0.5", "LowRankConfig"),
    "convert": ("convert --precision int8 --keep-float 1", "ConvertConfig"),
}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def no_user_devices(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user devices.yaml


@pytest.mark.parametrize("command", TIMING_COMMANDS)
@pytest.mark.parametrize("device,needle", [
    ("bogus:x", "Bad device address 'bogus:x': unknown device kind 'bogus'"),
    ("board7", "Unknown device 'board7'"),
    # a kind the address grammar knows but this version cannot run on (adb until its transport lands)
    *[(kind, f"{kind}: {why.split(';')[0]}") for kind, why in NOT_IMPLEMENTED.items()],
])
def test_a_bad_device_fails_with_one_error_line_before_any_work(command, device, needle, tmp_path,
                                                                no_user_devices):
    """The artifacts do not even exist: the device is what fails, first, and nothing is written."""
    words, config = TIMING_COMMANDS[command]
    data = [] if command == "convert" else ["--data", tmp_path / "no_data"]
    r = invoke(*words.split(), tmp_path / "no_model", *data, "--device", device, "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}.device: ") and needle in lines[0], lines
    assert "Traceback" not in r.output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", TIMING_COMMANDS)
def test_a_good_device_is_accepted_and_the_next_check_speaks(command, tmp_path, no_user_devices):
    words, _ = TIMING_COMMANDS[command]
    data = [] if command == "convert" else ["--data", tmp_path / "no_data"]
    r = invoke(*words.split(), tmp_path / "no_model", *data, "--device", "local", "--out", tmp_path / "out")
    assert r.exit_code != 0 and "Config.device" not in r.stderr and "no_model does not exist" in r.stderr, r.output


def test_lowrank_and_convert_refuse_a_device_where_nothing_is_timed(tmp_path, monkeypatch):
    (tmp_path / "tfkit").mkdir()
    (tmp_path / "tfkit" / "devices.yaml").write_text("devices:\n  here:\n    address: local\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    r = invoke("lowrank", tmp_path / "m", "--data", tmp_path / "d", "--device", "here", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "without a latency_budget nothing is timed" in r.stderr, r.output
    r = invoke("convert", tmp_path / "m", "--device", "here", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "without keep_float nothing is timed" in r.stderr, r.output


def test_lowrank_times_on_a_named_device_and_records_it(tmp_path, monkeypatch, tiny_data, tiny_trained):
    """A devices.yaml name (here: this host, run through the real runner) is where the layers are
    timed, and the step's metrics say which device that was."""
    (tmp_path / "tfkit").mkdir()
    (tmp_path / "tfkit" / "devices.yaml").write_text("devices:\n  here:\n    address: local\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    r = invoke("lowrank", tiny_trained.path, "--data", tiny_data.path, "--latency-budget", 0.9, "--device", "here",
               "--min-channels", 8, "--round-to", 2, "--timing-rounds", 1, "--max-candidates", 2,
               "--out", tmp_path / "t", "-q")
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "t" / "manifest.json").read_text())["history"][-1]
    assert record["config"]["device"] == "here"
    assert record["metrics"]["device"] == {"address": "local", "name": "here"}
    timed = [info["latency_ms"] for info in record["metrics"]["layers"].values()]
    timed += [why for why in record["metrics"]["skipped"].values() if "latency_budget" in why]
    assert timed, record["metrics"]  # every eligible layer was timed: factorized with its times, or kept with them


def test_a_recipe_with_a_bad_device_fails_at_check_with_file_and_line(tmp_path, no_user_devices):
    from tfkit.errors import RecipeError
    from tfkit.recipe.check import load_recipe

    recipe = tmp_path / "board.yaml"
    recipe.write_text("description: structured pruning timed on a board\nmodel: m\nsteps:\n"
                      "  - step: data\n    with: {source: builtin, frames: 8, size: 32}\n"
                      "  - step: build\n    with: {family: mobilenet_v2, temporal: tsm}\n"
                      "  - step: train\n    inputs: [build, data]\n"
                      "  - step: structured\n    inputs: [train, data]\n    with: {ratio: 0.5,\n"
                      "           device: 'bogus:x'}\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe)
    assert str(e.value).startswith(f"{recipe}:13: steps[3].with.device: StructuredConfig.device: Bad device "
                                   "address 'bogus:x'"), str(e.value)
