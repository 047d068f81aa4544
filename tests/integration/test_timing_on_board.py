"""Timing on the target: tfkit.bench.timing over the real loopback ssh board (tests/board.py:
Debian's sshd, the board's own python with tflite-runtime 2.14), named in the user's devices.yaml
as `board`, so `--device board` reaches it the way a user's would."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.unit.test_timing import small_and_big  # noqa: F401  (the fixture: two real flatbuffers)
from tfkit.bench.devices.base import BenchConfig
from tfkit.bench.timing import device_record, time_flatbuffers, timing_device
from tfkit.cli.main import cli


@pytest.fixture
def board_named(board, tmp_path, monkeypatch):
    """The board as `board` in $XDG_CONFIG_HOME/tfkit/devices.yaml (config fields name devices so)."""
    (tmp_path / "config" / "tfkit").mkdir(parents=True)
    board.devices_yaml(tmp_path / "config" / "tfkit" / "devices.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return board


def test_time_flatbuffers_on_the_board_gives_the_bigger_model_the_larger_p50(board_named, small_and_big):  # noqa: F811
    config = BenchConfig(threads=1, warmup=2, runs=10)
    on_board = time_flatbuffers(small_and_big, "board", config, rounds=1)
    here = time_flatbuffers(small_and_big, "local", config, rounds=1)
    assert 0 < on_board["small"] < on_board["big"], on_board
    assert 0 < here["small"] < here["big"], here
    assert timing_device("board").name != "local"
    assert device_record("board") == {"address": board_named.address, "name": "board"}


def test_lowrank_latency_budget_times_its_layers_on_the_board(board_named, tmp_path, tiny_data, tiny_trained):
    r = CliRunner().invoke(cli, [str(a) for a in (
        "lowrank", tiny_trained.path, "--data", tiny_data.path, "--latency-budget", 0.9, "--device", "board",
        "--min-channels", 8, "--round-to", 2, "--timing-rounds", 1, "--max-candidates", 2,
        "--out", tmp_path / "t", "-q")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "t" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert metrics["device"] == {"address": board_named.address, "name": "board"}
    timed = [info["latency_ms"]["original"] for info in metrics["layers"].values()]
    timed += [why for why in metrics["skipped"].values() if "ms as it is" in why]
    assert timed, metrics  # every eligible layer was timed there: factorized with its times, or kept with them
