"""Delegate coverage: every rule proven on a small model (or graph) built to trip it."""
from __future__ import annotations

import json
import sys
import textwrap
import warnings

import numpy as np
import pytest

from tests.helpers import install_plugin
from tfkit.convert.flatbuffer import read_model, write_model
from tfkit.delegates import CheckOptions, check_bytes, check_file, delegate_names, get_delegate
from tfkit.delegates.base import summarize
from tfkit.delegates.graph import OpInfo, TensorInfo, TfliteGraph
from tfkit.errors import ModelFileError, ToolNotFoundError, UnknownNameError


def _convert(model, *, int8: bool = False, fixed_batch: bool = True) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = [1, *model.input_shape[1:]]
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.normal(size=shape).astype(np.float32)] for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _image_model(head=None, *, batch=1, hard_swish=False):
    from tfkit._compat.keras import keras

    K = keras()
    x = K.Input(batch_shape=(batch, 16, 16, 3))
    y = K.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    if hard_swish:
        y = K.layers.Activation("hard_silu")(y) if hasattr(K.activations, "hard_silu") else \
            K.layers.Lambda(lambda t: t * K.activations.relu(t + 3.0, max_value=6.0) / 6.0)(y)
    y = K.layers.GlobalAveragePooling2D()(y)
    y = K.layers.Dense(4)(y)
    if head is not None:
        y = head(y)
    return K.Model(x, y)


def _argmax_head(t):
    import tensorflow as tf

    from tfkit._compat.keras import keras

    return keras().layers.Lambda(lambda v: tf.cast(tf.argmax(v, axis=-1), tf.float32))(t)


@pytest.fixture(scope="module")
def argmax_fb():
    """A float image model whose last ops (ARG_MAX, CAST to float) the GPU delegate lacks."""
    return _convert(_image_model(_argmax_head))


@pytest.fixture(scope="module")
def int8_fb():
    return _convert(_image_model(), int8=True)


STATIC = CheckOptions(measure=False)  # the rule tables, even where the real GPU accelerator loads


def _rows(cov, delegated: bool):
    return {r.op: r for r in cov.ops if r.delegated is delegated}


def test_builtin_delegates_registered():
    assert {"xnnpack", "gpu", "nnapi", "edgetpu"} <= set(delegate_names())
    for name in ("xnnpack", "gpu", "nnapi", "edgetpu"):
        info = get_delegate(name).info()
        assert info["benchmark_flags"] and info["android_accelerator"] and info["load"]
    assert get_delegate("nnapi").deprecated and "Android 15" in get_delegate("nnapi").deprecated
    with pytest.raises(UnknownNameError, match="Did you mean 'gpu'"):
        get_delegate("gpuu")


def test_gpu_names_exactly_the_ops_that_fall_back(argmax_fb):
    (gpu,) = check_bytes(argmax_fb, ["gpu"], options=STATIC)
    assert gpu.verdict == "partial"
    fallback = _rows(gpu, False)
    assert set(fallback) == {"ARG_MAX", "CAST"}, gpu.ops
    assert "op unsupported" in fallback["ARG_MAX"].reason and "dtype int64" in fallback["CAST"].reason
    assert gpu.ops_total - gpu.ops_delegated == 2 and gpu.summary() == f"partial: 2/{gpu.ops_total} ops on CPU"


def test_xnnpack_coverage_is_measured_in_the_runtime(argmax_fb, int8_fb):
    (x,) = check_bytes(argmax_fb, ["xnnpack"])
    assert x.source.startswith("measured") and set(_rows(x, False)) == {"ARG_MAX", "CAST"}
    (full,) = check_bytes(int8_fb, ["xnnpack"])
    assert full.verdict == "full" and full.partitions == 1


def test_gpu_rejects_5d_strided_slice_that_the_analyzer_passes():
    from tfkit._compat.keras import keras
    from tfkit.delegates.gpu import analyze_gpu

    K = keras()
    x = K.Input(batch_shape=(1, 4, 8, 8, 3))
    y = K.layers.Cropping3D(((1, 0), (0, 0), (0, 0)))(x)  # a 5-D STRIDED_SLICE
    y = K.layers.Flatten()(y)
    fb = _convert(K.Model(x, K.layers.Dense(2)(y)))
    (gpu,) = check_bytes(fb, ["gpu"], options=STATIC)
    reasons = {r.reason for r in gpu.ops if not r.delegated}
    assert any("5-D" in r for r in reasons), gpu.ops
    assert analyze_gpu(fb).compatible  # why our own rules exist: the analyzer misses it


def _chain(names, dtype="float32"):
    """A graph of ops in a row, each reading the previous one's output."""
    ts = [TensorInfo(i, f"t{i}", dtype, (1, 8, 8, 4), (1, 8, 8, 4), False, dtype == "int8", False)
          for i in range(len(names) + 1)]
    ops = [OpInfo(i, name, 1, (ts[i],), (ts[i + 1],)) for i, name in enumerate(names)]
    return TfliteGraph(tuple(ops), (ts[0],), (ts[-1],), 1, 0, None)


def test_gpu_delegates_only_the_largest_partition():
    graph = _chain(["CONV_2D", "CONV_2D", "CONV_2D", "TOPK_V2", "CONV_2D"])
    decisions = get_delegate("gpu").decide(graph)
    assert [d.delegated for d in decisions] == [True, True, True, False, False]
    assert "largest GPU partition" in decisions[4].reason and "no TOPK_V2" in decisions[3].reason


def test_nnapi_rules_op_version_api_level_and_dtype(argmax_fb, int8_fb):
    model = read_model(int8_fb)
    conv = next(i for i, c in enumerate(model.operatorCodes) if max(c.builtinCode, c.deprecatedBuiltinCode) == 3)
    model.operatorCodes[conv].version = 9  # CONV_2D v9: newer than NNAPI maps
    (cov,) = check_bytes(write_model(model), ["nnapi"])
    assert "op version 9" in _rows(cov, False)["CONV_2D"].reason
    (old,) = check_bytes(int8_fb, ["nnapi"], android_api=29)  # signed int8 arrived with API 30
    assert cov.notes and all("dtype int8 needs Android 11" in r.reason for r in old.ops if not r.delegated)
    assert old.verdict == "none"
    (cur,) = check_bytes(int8_fb, ["nnapi"], android_api=30)
    assert cur.verdict == "full", cur.ops
    (fl,) = check_bytes(argmax_fb, ["nnapi"])
    assert "int64" in _rows(fl, False)["ARG_MAX"].reason


def test_edgetpu_needs_full_int8_static_shapes_and_maps_one_prefix(argmax_fb, int8_fb):
    (fl,) = check_bytes(argmax_fb, ["edgetpu"])
    assert fl.verdict == "none" and any("not fully int8" in r.reason for r in fl.ops)
    assert any("edgetpu_compiler is not on PATH" in n for n in fl.notes)  # the static check still ran
    (q,) = check_bytes(int8_fb, ["edgetpu"])
    assert q.verdict == "full", q.ops
    dynamic = _convert(_image_model(batch=None))
    (dyn,) = check_bytes(dynamic, ["edgetpu"])
    assert dyn.verdict == "none" and any("dynamic shape" in r.reason for r in dyn.ops)
    t = TensorInfo(0, "x", "int8", (1, 8, 8, 4), (1, 8, 8, 4), False, True, False)
    ops = [OpInfo(i, n, 1, (t,), (t,)) for i, n in enumerate(["CONV_2D", "TOPK_V2", "CONV_2D"])]
    decisions = get_delegate("edgetpu").decide(TfliteGraph(tuple(ops), (t,), (t,), 1, 0, None))
    assert [d.delegated for d in decisions] == [True, False, False]
    assert "after the first unmapped op" in decisions[2].reason and "TOPK_V2" in decisions[2].detail
    video = TensorInfo(0, "clip", "int8", (8, 16, 16, 8), (8, 16, 16, 8), False, True, False)
    (d,) = get_delegate("edgetpu").decide(TfliteGraph((OpInfo(0, "CONV_2D", 1, (video,), (video,)),), (video,),
                                                      (video,), 1, 0, None))
    assert not d.delegated and "3 innermost" in d.reason


def test_edgetpu_compiler_log_is_parsed_into_the_same_table(tmp_path, monkeypatch, int8_fb):
    log = textwrap.dedent("""\
        Edge TPU Compiler version 16.0.384591198
        Input: model.tflite
        Output: model_edgetpu.tflite

        Operator                       Count      Status

        CONV_2D                        2          Mapped to Edge TPU
        MEAN                           1          Mapped to Edge TPU
        SOFTMAX                        1          Operation is otherwise supported, but not mapped due to some unspecified limitation
        """)
    from tfkit.delegates.edgetpu import compile_log_coverage, parse_compiler_log

    cov = parse_compiler_log(log)
    assert (cov.verdict, cov.ops_total, cov.ops_delegated, cov.source) == ("partial", 4, 3, "edgetpu_compiler 16.0.384591198")
    assert "unspecified limitation" in _rows(cov, False)["SOFTMAX"].reason
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match="apt-get install edgetpu-compiler"):
        compile_log_coverage(int8_fb)
    # the tool boundary: a stand-in compiler that checks its arguments and prints a recorded log
    fake = tmp_path / "edgetpu_compiler"
    fake.write_text(f"#!{sys.executable}\nimport sys, pathlib\nassert sys.argv[1] == '-s' and "
                    f"pathlib.Path(sys.argv[-1]).read_bytes()[4:8] == b'TFL3'\nprint({log!r})\n")
    fake.chmod(0o755)
    (via,) = check_bytes(int8_fb, ["edgetpu"])
    assert via.source.startswith("edgetpu_compiler") and via.ops_delegated == 3


def test_unknown_custom_op_gets_a_verdict_everywhere(int8_fb):
    model = read_model(int8_fb)
    code = model.operatorCodes[-1]
    code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
    code.customCode = b"MyVendorOp"
    fb = write_model(model)
    for cov in check_bytes(fb, ["all"], options=STATIC):
        row = next(r for r in cov.ops if r.op == "CUSTOM:MyVendorOp")
        assert not row.delegated and "custom op 'MyVendorOp'" in row.reason, cov.delegate
    (x,) = check_bytes(fb, ["xnnpack"])
    assert "did not load" in " ".join(x.notes)  # stock LiteRT cannot resolve it: static rules


@pytest.mark.parametrize("data, match", [(b"", "not a TFLite flatbuffer"), (b"\x00" * 64, "not a TFLite"),
                                         (None, "truncated")])
def test_unusable_files_give_one_clear_error(tmp_path, int8_fb, data, match):
    path = tmp_path / "bad.tflite"
    path.write_bytes(int8_fb[:len(int8_fb) // 3] if data is None else data)
    with pytest.raises(ModelFileError, match=match):
        check_file(path, ["gpu"])


def test_summarize_verdicts():
    from tfkit.delegates.base import OpDecision

    assert summarize("x", [OpDecision(0, "A", True)], source="s").verdict == "full"
    none = summarize("x", [OpDecision(0, "A", False, "why")], source="s")
    assert none.verdict == "none" and none.summary() == "not delegable: why"


def test_plugin_entry_point_registers_a_third_party_delegate(tmp_path, monkeypatch, int8_fb):
    from tfkit.delegates import base

    install_plugin(tmp_path, monkeypatch, "toy_delegate", """\
        from tfkit.delegates.base import DelegateProvider, LoadHint

        class ToyDelegate(DelegateProvider):
            name = "toy"
            title = "Toy NPU"
            benchmark_flags = ("--external_delegate_path=libtoy.so",)
            android_accelerator = "none"

            def op_reason(self, op, graph):
                return None if op.name == "CONV_2D" else "toy runs convolutions only"

            def load_hint(self):
                return LoadHint(False, "no")
        """, "tfkit.delegates",
                   {"toy": "toy_delegate:ToyDelegate", "broken": "toy_delegate:Missing"}, base.DELEGATES)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert "toy" in delegate_names()
        assert any("broken" in str(w.message) for w in caught)  # a broken plug-in warns, never breaks
        (cov,) = check_bytes(int8_fb, ["toy"])
        assert cov.verdict == "partial" and _rows(cov, True).keys() == {"CONV_2D"}
    finally:
        base.DELEGATES._items.pop("toy", None)


def test_cli_check_json_and_exit_codes(tmp_path, argmax_fb):
    from click.testing import CliRunner

    from tfkit.cli.main import cli

    path = tmp_path / "m.tflite"
    path.write_bytes(argmax_fb)
    res = CliRunner().invoke(cli, ["check", str(path), "--delegate", "gpu", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert {"delegate", "verdict", "ops_total", "ops_delegated", "ops"} <= payload.keys()
    assert payload["verdict"] == "partial" and {r["op"] for r in payload["ops"] if not r["delegated"]} == {"ARG_MAX", "CAST"}
    assert all({"op", "count", "delegated", "reason"} <= r.keys() for r in payload["ops"])
    every = CliRunner().invoke(cli, ["check", str(path), "-d", "all"])
    assert every.exit_code == 0 and "nnapi: " in every.output and "deprecated" in every.output
    (tmp_path / "junk.tflite").write_bytes(b"\x13" * 1000)
    bad = CliRunner().invoke(cli, ["check", str(tmp_path / "junk.tflite"), "--json"])
    assert bad.exit_code == 2 and "error:" in bad.output and "Traceback" not in bad.output
    typo = CliRunner().invoke(cli, ["check", str(path), "-d", "edgetp"])
    assert typo.exit_code == 2 and "edgetpu" in typo.output


def test_check_step_on_a_converted_artifact(tiny_demo, tmp_path):
    from tfkit.steps import run_step
    from tfkit.steps.base import RunContext
    from tfkit.steps.check import CheckConfig, CheckStep

    art = run_step(CheckStep(CheckConfig(delegate="xnnpack")), [tiny_demo.artifacts["convert-int8"]],
                   tmp_path / "check", RunContext(progress=False, log=lambda m: None))
    payload = json.loads(art.file("coverage").read_text())
    assert payload["verdict"] == "full" and art.manifest.history[-1].metrics["verdict"] == "full"
    from tfkit.errors import UsageError

    with pytest.raises(UsageError, match="requires 'full'"):
        run_step(CheckStep(CheckConfig(delegate="edgetpu", require="full")), [tiny_demo.artifacts["convert-int8"]],
                 tmp_path / "check-tpu", RunContext(progress=False, log=lambda m: None))


def test_gpu_folds_float16_weight_dequantize_into_its_partition():
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(_image_model())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    fb = conv.convert()
    graph = TfliteGraph.from_flatbuffer(fb)
    assert any(op.name == "DEQUANTIZE" for op in graph.ops)  # float16 weights, dequantized at load
    (gpu,) = check_bytes(fb, ["gpu"], options=STATIC)
    assert gpu.verdict == "full", gpu.ops
