"""BenchConfig validation, the runner command line, and the device registry."""
from __future__ import annotations

import dataclasses

import pytest

from tfkit.bench import BenchConfig, Device, Runtime
from tfkit.bench.devices import DEVICES, runner_args, runner_script
from tfkit.bench.devices.local import LocalDevice
from tfkit.errors import UsageError
from tfkit.types import Normalization


def test_defaults_and_coercion():
    config = BenchConfig(normalization="unit", runtime="tflite_runtime")
    assert (config.threads, config.warmup, config.runs, config.timeout_s) == (2, 5, 50, 600.0)
    assert config.normalization is Normalization.UNIT and config.runtime is Runtime.TFLITE_RUNTIME
    assert BenchConfig().normalization == "symmetric" and BenchConfig().runtime == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.threads = 4


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"threads": 0}, "threads must be an integer >= 1"),
        ({"runs": 2.5}, "runs must be an integer"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"normalization": "imagenet"}, "choose one of 'unit', 'symmetric'"),
        ({"runtime": "tflite"}, "choose one of 'auto', 'litert', 'tflite_runtime'"),
        ({"timeout_s": 0}, "timeout_s must be positive"),
        ({"eval_limit": 0}, "eval_limit must be None or an integer >= 1"),
    ],
)
def test_bad_values_are_usage_errors(kwargs, words):
    with pytest.raises(UsageError, match=words):
        BenchConfig(**kwargs)


def test_runner_args_carry_every_option():
    config = BenchConfig(threads=4, warmup=1, runs=9, normalization="unit", runtime="litert", eval_limit=3)
    args = runner_args("m.tflite", config=config, eval_npz="c.npz", json_out="r.json", predictions_out="p.npz")
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs == {
        "--model": "m.tflite", "--threads": "4", "--warmup": "1", "--runs": "9", "--runtime": "litert",
        "--normalization": "unit", "--eval": "c.npz", "--eval-limit": "3", "--predictions-out": "p.npz",
        "--json-out": "r.json",
    }
    # eval-only options are dropped without eval data
    assert "--eval-limit" not in runner_args("m.tflite", config=config)


def test_registry_and_runner_location():
    assert DEVICES.get("local") is LocalDevice and issubclass(LocalDevice, Device)
    assert LocalDevice().name == "local"
    assert runner_script().name == "runner.py" and runner_script().is_file()
    with pytest.raises(TypeError):
        Device()  # abstract
