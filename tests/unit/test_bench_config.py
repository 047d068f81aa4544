"""BenchConfig validation, the runner command line, and the device registry."""
from __future__ import annotations

import dataclasses

import pytest

from tfkit.bench import BenchConfig, Device, Runtime
from tfkit.bench.devices import DEVICES, runner_args, runner_script
from tfkit.bench.devices.base import RunnerDelegate, cores_from_mask
from tfkit.bench.devices.local import LocalDevice
from tfkit.errors import UsageError
from tfkit.types import Normalization


def test_defaults_and_coercion():
    config = BenchConfig(normalization="unit", runtime="tflite_runtime")
    assert (config.threads, config.warmup, config.runs, config.timeout_s) == (2, 5, 50, 600.0)
    assert config.normalization is Normalization.UNIT and config.runtime is Runtime.TFLITE_RUNTIME
    assert BenchConfig().normalization == "symmetric" and BenchConfig().runtime == "auto"
    plain = BenchConfig()
    assert (plain.delegate, plain.delegate_library, plain.cpu_affinity, plain.stream, plain.fps, plain.rounds,
            plain.cooldown_s) == ("default", None, None, False, None, 1, 0.0)
    tuned = BenchConfig(delegate="edgetpu", delegate_library="/usr/lib/libedgetpu.so.1", cpu_affinity="5, 4",
                        stream=True, fps=15, rounds=5, cooldown_s=2.5)
    assert tuned.delegate is RunnerDelegate.EDGETPU and tuned.cpu_affinity == (4, 5)
    assert BenchConfig(cpu_affinity=[3, 0]).cpu_affinity == (0, 3)
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
        ({"delegate": "coreml"}, "choose one of 'default', 'none', 'xnnpack', 'gpu', 'nnapi', 'edgetpu'"),
        ({"delegate_library": "libx.so"}, "delegate is 'default'; name the delegate it provides"),
        ({"delegate": "gpu", "delegate_library": " "}, "delegate_library must be the path of a delegate .so"),
        ({"cpu_affinity": "f0"}, "give core ids such as"),
        ({"cpu_affinity": [1, 1]}, "distinct core ids"),
        ({"cpu_affinity": []}, "distinct core ids"),
        ({"cpu_affinity": [-1]}, "distinct core ids"),
        ({"stream": "yes"}, "stream must be True or False"),
        ({"fps": 30}, "needs stream=True"),
        ({"stream": True, "fps": 0}, "fps must be None or a positive number"),
        ({"stream": True, "fps": float("inf")}, "fps must be None or a positive number"),
        ({"rounds": 0}, "rounds must be an integer >= 1"),
        ({"rounds": 4, "runs": 3}, r"rounds \(4\) is more than runs \(3\)"),
        ({"cooldown_s": -1}, "cooldown_s must be a number of seconds >= 0"),
        ({"cooldown_s": float("nan")}, "cooldown_s must be a number of seconds >= 0"),
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


def test_runner_args_pass_new_options_only_when_set():
    """An older runner (tfkit.runner/1) knows none of them, so the defaults must add nothing; the
    host's plan (rounds, cool-down) never reaches the runner."""
    plain = runner_args("m.tflite", config=BenchConfig(rounds=3, runs=9, cooldown_s=1.0))
    assert plain == runner_args("m.tflite", config=BenchConfig(runs=9))
    assert not {"--delegate", "--delegate-library", "--cpu-affinity", "--stream", "--fps", "--rounds"} & set(plain)
    args = runner_args("m.tflite", config=BenchConfig(delegate="edgetpu", delegate_library="/lib/libedgetpu.so.1",
                                                      cpu_affinity=(6, 4), stream=True, fps=12.5))
    tail = args[args.index("--delegate"):]
    assert tail == ["--delegate", "edgetpu", "--delegate-library", "/lib/libedgetpu.so.1", "--cpu-affinity", "4,6",
                    "--stream", "--fps", "12.5"]
    assert runner_args("m.tflite", config=BenchConfig(delegate="none"))[-2:] == ["--delegate", "none"]


def test_runs_split_over_rounds_and_masks_name_cores():
    assert BenchConfig(runs=50, rounds=3).runs_per_round() == [17, 17, 16]
    assert BenchConfig(runs=2, rounds=2).runs_per_round() == [1, 1]
    assert sum(BenchConfig(runs=7, rounds=7).runs_per_round()) == 7
    assert cores_from_mask("f0") == (4, 5, 6, 7) and cores_from_mask("0x5") == (0, 2)


def test_registry_and_runner_location():
    assert DEVICES.get("local") is LocalDevice and issubclass(LocalDevice, Device)
    assert LocalDevice().name == "local"
    assert runner_script().name == "runner.py" and runner_script().is_file()
    with pytest.raises(TypeError):
        Device()  # abstract
