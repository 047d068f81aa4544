"""`convert` step: a trained Keras model (+ dataset for calibration and parity) -> a .tflite artifact
that passed its parity bar.

Example:
    >>> run_step(ConvertStep(ConvertConfig(precision="int8")), [model_art, data_art], Path("out/05-int8"))  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tfkit.artifacts import write_bytes_atomic
from tfkit.convert.variants import VARIANTS
from tfkit.data import ClipSet, normalize
from tfkit.errors import ConversionError, UsageError, first_line
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.types import ArtifactKind

TFLITE_FILE = "model.tflite"
FORMS = ("clip", "stream")


@dataclass(frozen=True)
class ConvertConfig:
    precision: str = "float32"
    form: str = "clip"  # "clip" (T frames in) or "stream" (one frame + state; causal models only)
    calibration_clips: int = 128  # drawn from the training split
    parity_clips: int = 64  # drawn from the validation split
    max_abs_logit_diff: float | None = None  # parity bars; None = the precision's default
    min_top1_agreement: float | None = None
    qat_epochs: int = 0  # int8 only: fine-tune with quantization-aware training (TFMOT) first (stream: its weights)
    keep_float: int = 0  # int8 only: keep the N layers with the worst int8 error (QuantizationDebugger) in float
    sparse: bool = False  # store pruned (mostly zero) kernels in TFLite's sparse format
    per_channel: bool = True  # int8/int16x8: one kernel scale per output channel (False: one per kernel)
    strip_names: bool = False  # drop internal tensor names (inputs, outputs, signatures kept): smaller files
    seed: int = 0
    device: str = "local"  # keep_float / repair: where int8 variants are timed (an address or a devices.yaml name)
    repair: str = field(default="off", metadata={"help": (
        "off | auto. int8 clip: auto finds the fewest float ops and the kernel-scale granularity "
        "(per-channel, per-tensor or per layer) whose accuracy drop on the calibration clips is within --repair-budget")})
    repair_budget: float = field(default=0.01, metadata={"help": (
        "--repair auto: the largest int8 accuracy drop against float, judged on the calibration clips (0.01 = 1 point)")})
    rounding: str = field(default="optimized", metadata={"help": (
        "optimized | nearest. Post-training int8 kernels rounded for each layer's output error "
        "(optimized; same scales, same size) or to the nearest step (TFLite's own)")})

    def __post_init__(self):
        VARIANTS.get(self.precision)  # unknown name -> UnknownNameError with suggestions
        if self.form not in FORMS:
            raise UsageError(f"unknown form {self.form!r}; choose one of {', '.join(FORMS)}")
        if self.calibration_clips < 1 or self.parity_clips < 1:
            raise UsageError("calibration_clips and parity_clips must be >= 1")
        if self.qat_epochs < 0 or self.keep_float < 0:
            raise UsageError("qat_epochs and keep_float must be >= 0")
        if self.keep_float and (self.precision != "int8" or self.form != "clip"):
            raise UsageError("keep_float applies to --precision int8 --form clip only")
        if self.qat_epochs and self.precision != "int8":
            raise UsageError("qat_epochs applies to --precision int8 only (--form clip or stream)")
        if self.sparse and (self.form != "clip" or self.keep_float):
            raise UsageError("sparse applies to --form clip without keep_float")
        if not self.per_channel and (not VARIANTS.get(self.precision).needs_calibration or self.form != "clip"
                                     or self.qat_epochs or self.keep_float):
            raise UsageError("per_channel=False (--no-per-channel) applies to calibrated precisions (int8, int16x8) with --form clip, "
                             "without qat_epochs or keep_float")
        from tfkit.convert.rounding import ROUNDINGS

        if self.rounding not in ROUNDINGS:
            raise UsageError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}")
        check_repair_config(self)
        if self.qat_epochs and self.keep_float:
            raise UsageError("choose one of qat_epochs (QAT) and keep_float (selective int8), not both")
        from tfkit.bench.timing import LOCAL, check_device

        check_device(self.device, "ConvertConfig")
        if self.device != LOCAL and not (self.keep_float or self.repair != "off"):
            raise UsageError(f"device={self.device!r} is where keep_float times full and selective int8; "
                             "without keep_float nothing is timed (benchmark the result with "
                             "`tfkit bench ARTIFACT --device ...`)")

    def to_dict(self) -> dict:
        return asdict(self)

    def parity_bars(self) -> dict:
        return {k: v for k, v in (("max_abs_logit_diff", self.max_abs_logit_diff),
                                  ("min_top1_agreement", self.min_top1_agreement)) if v is not None}


def _pick(clips: ClipSet, n: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).permutation(len(clips.y))[:n]
    return clips.x[np.sort(idx)]


def _random_inputs(model, c: ConvertConfig, ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, parity) inputs without a dataset: seeded uniform [-1, 1] arrays of the model's
    input shape."""
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    ctx.log(f"[convert] no dataset: parity on {c.parity_clips} random inputs of shape {list(shape)} is accuracy-free "
            "(it shows the .tflite computes what the Keras model does, not that either is accurate)"
            + (f"; {c.precision} calibration on random data is only a smoke test"
               if VARIANTS.get(c.precision).needs_calibration else "")
            + ". Pass --data DATASET with real clips for numbers you can deploy.")
    rng = np.random.default_rng(c.seed)
    return (rng.uniform(-1.0, 1.0, (c.calibration_clips, *shape)).astype(np.float32),
            rng.uniform(-1.0, 1.0, (c.parity_clips, *shape)).astype(np.float32))


def _check_clip_shape(model, clips: ClipSet, data_art) -> None:
    """A dataset whose clips do not fit the model's input is refused before any work (both named)."""
    want = [None if d is None else int(d) for d in model.inputs[0].shape[1:]]
    got = [int(d) for d in clips.x.shape[1:]]
    if len(model.inputs) == 1 and (len(want) != len(got) or any(w not in (None, g) for w, g in zip(want, got))):
        raise UsageError(f"dataset {data_art.path} has clips of shape {got} but the model's input is "
                         f"{[None, *want]} (samples of {want}); "
                         "make a dataset with the model's frames and size (tfkit data --frames T --size S), or "
                         "convert without --data (random inputs)")


@STEPS.register("convert")
class ConvertStep(Step):
    """Convert a Keras model to TFLite in one precision and check parity. Inputs: [keras model, dataset],
    or [keras model] alone: calibration and parity then run on seeded random inputs (a smoke test)."""

    name = "convert"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: ConvertConfig

    @classmethod
    def accepts(cls, kinds) -> bool:
        return list(kinds) == [ArtifactKind.KERAS_MODEL] or super().accepts(kinds)  # a user model, no dataset

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit._compat.keras import versions
        from tfkit.convert.flatbuffer import strip_names
        from tfkit.convert.metadata import embed_metadata, metadata_for
        from tfkit.convert.parity import TFLiteModel, check_parity
        from tfkit.convert.tflite import convert_keras
        from tfkit.delegates.gpu import analyze_gpu
        from tfkit.models.io import load_model, trusted
        from tfkit.optimize.prune import gzip_bytes

        c: ConvertConfig = self.config
        model_art, data_art = inputs[0], (inputs[1] if len(inputs) > 1 else None)
        if data_art is None and c.qat_epochs:
            raise UsageError("qat_epochs trains on a dataset: pass --data DATASET")
        if c.form == "stream" and "model" not in model_art.manifest.spec:
            raise UsageError(f"{model_art.path} is not a tfkit zoo model; the stream form needs one (a causal "
                             "VideoModelSpec it can rebuild frame by frame). Use --form clip")
        if c.keep_float or c.repair != "off":  # these time int8 variants: a device that cannot be opened fails first
            from tfkit.bench.timing import timing_device

            device = timing_device(c.device)
        model = load_model(model_art.file("model"), trust=trusted(model_art))
        if data_art is None:
            calibration, parity = _random_inputs(model, c, ctx)
        else:
            norm = data_art.manifest.spec["clip"]["normalization"]
            train, val = ClipSet.load_npz(data_art.file("train")), ClipSet.load_npz(data_art.file("val"))
            _check_clip_shape(model, train, data_art)
            calibration = normalize(_pick(train, c.calibration_clips, c.seed), norm)
            parity = normalize(_pick(val, c.parity_clips, c.seed), norm)
        ctx.log(f"[convert] {c.precision} {c.form}: converting"
                + (f" (calibrating on {len(calibration)} clips)" if VARIANTS.get(c.precision).needs_calibration else ""))
        # Which inputs parity ran on, so that no report shows a random-input check as an accuracy one.
        extra = {"parity_inputs": "real clips" if data_art is not None else "random"}
        if c.qat_epochs:
            qat, extra["qat"] = _quantization_aware(model, data_art, c, ctx, calibration)
            if c.form == "stream":  # TFMOT cannot wrap state inputs: the stream is built from the QAT-tuned weights
                from tfkit.convert.qat import float_from_qat

                model = float_from_qat(qat, model)
            else:
                model = qat
        if c.form == "stream":
            flatbuffer, report, stream_spec = _convert_stream(model, model_art, c, calibration, parity, extra, ctx)
        elif c.keep_float:
            from tfkit.bench.timing import device_record
            from tfkit.convert.repair import summary
            from tfkit.convert.selective import convert_selective

            flatbuffer, selective = convert_selective(model, [x[None] for x in calibration], keep_float=c.keep_float,
                                                      eval_clips=[x[None] for x in parity], device=device)
            extra["selective"] = {k: selective[k] for k in ("kept_float", "full_int8", "selective")}
            extra["selective"]["device"] = device_record(c.device)
            extra["rounding"] = _JUDGED
            extra["layer_errors"] = {"metric": "rmse_over_scale", "layers": summary(selective["layers"])}
            ctx.log(f"[convert] int8: kept in float: {[k['tensor_name'] for k in selective['kept_float']]}")
            report, stream_spec = check_parity(model, flatbuffer, parity, c.precision, **c.parity_bars()), None
        elif c.repair != "off":  # judged on the calibration clips (train split) only, never on `parity`
            flatbuffer, extra["repair"], extra["layer_errors"] = repair_step(model, calibration, data_art, c, device, ctx)
            chosen = extra["repair"]["chosen"]
            extra["rounding"] = {"rounding": chosen["rounding"], **({"why": chosen["rounding_why"]} if "rounding_why"
                                                                   in chosen else {})}
            report, stream_spec = check_parity(model, flatbuffer, parity, c.precision, **c.parity_bars()), None
        else:
            flatbuffer = convert_keras(model, c.precision, calibration=(x[None] for x in calibration), sparse=c.sparse,
                                       per_channel=c.per_channel)
            flatbuffer, calibrated = _rounded(flatbuffer, model, [x[None] for x in calibration], c, extra, ctx)
            report, stream_spec = check_parity(model, flatbuffer, parity, c.precision, **c.parity_bars()), None
            if c.precision == "int8" and not c.qat_epochs:  # every int8 conversion: per-layer error
                from tfkit.convert.repair import record_layer_errors

                extra["layer_errors"] = record_layer_errors(model, [x[None] for x in calibration], calibrated=calibrated,
                                                            granularity="per_channel" if c.per_channel else "per_tensor")
        if c.precision == "int8" and "layer_errors" not in extra:  # said, not silently absent
            extra["layer_errors"] = {"skipped": "per-layer error is recorded for post-training int8 of the clip "
                                                "form; not yet for the stream form or QAT models"}
        ctx.log(f"[convert] {c.precision} {c.form}: parity ok ({report.threshold})")
        named_bytes = len(flatbuffer)
        if c.strip_names:  # names only: the graph and weights are the bytes parity just checked
            flatbuffer = strip_names(flatbuffer)
        tfl = TFLiteModel(flatbuffer)
        # The model's data input: for the streaming form the signature's `frame`, not a state.
        inp = tfl.interpreter.get_signature_runner().get_input_details()["frame"] if c.form == "stream" else tfl.input
        spec = {**model_art.manifest.spec, "precision": c.precision, "form": c.form,
                "input": {"name": "frame" if c.form == "stream" else inp["name"],
                          "shape": [int(s) for s in inp["shape"]], "dtype": np.dtype(inp["dtype"]).name,
                          "quantization": [float(q) for q in inp["quantization"]]}}
        if stream_spec:
            spec["stream"] = stream_spec
        # Labels, normalization and the state layout travel inside the file; the graph is untouched,
        # so the parity just checked holds for the bytes written.
        plain_bytes = len(flatbuffer)
        flatbuffer = embed_metadata(flatbuffer, metadata_for(spec, data_art.manifest.spec if data_art else None))
        write_bytes_atomic(workdir / TFLITE_FILE, flatbuffer)
        # Builtin ops only by construction: the converter is never given SELECT_TF_OPS, so a layer
        # that needs Flex fails conversion with the converter's own message.
        metrics = {"size_bytes": len(flatbuffer), "gzip_bytes": gzip_bytes(flatbuffer), "parity": report.to_dict(),
                   "metadata_bytes": len(flatbuffer) - plain_bytes,
                   **({"stripped_name_bytes": named_bytes - plain_bytes} if c.strip_names else {}),
                   "ops": tfl.op_counts(),
                   "float_activation_tensors": tfl.float_activation_count(),
                   "xnnpack_partitions": tfl.xnnpack_partitions(), "gpu_analyzer": analyze_gpu(flatbuffer).to_dict(),
                   **extra}
        return StepOutput(ArtifactKind.TFLITE_MODEL, {"model": TFLITE_FILE}, spec, metrics, versions())


def _quantization_aware(model, data_art, c: ConvertConfig, ctx: RunContext, calibration):
    """TFMOT quantization-aware fine-tuning of `model` on the dataset (a copy; the input is kept),
    its activation ranges first calibrated on the calibration clips (as post-training int8 would
    set them; TFMOT's own start, [-6, 6], barely moves in a short fine-tune)."""
    from tfkit.convert.qat import quantize_aware, quantized_layer_coverage, train_qat
    from tfkit.train import TrainConfig

    qat = quantize_aware(model, calibration=calibration)
    train, val = ClipSet.load_npz(data_art.file("train")), ClipSet.load_npz(data_art.file("val"))
    norm = data_art.manifest.spec["clip"]["normalization"]
    ctx.log(f"[convert] int8: quantization-aware training, {c.qat_epochs} epoch(s)")
    result = train_qat(qat, train, val, TrainConfig(epochs=c.qat_epochs, learning_rate=2e-4, normalization=norm,
                                                    seed=c.seed),
                       progress=ctx.progress, symmetries=data_art.manifest.spec.get("symmetries"))
    coverage = {k: len(v) for k, v in quantized_layer_coverage(qat).items()}
    return qat, {"epochs": c.qat_epochs, "val_accuracy": result.val_accuracy, "layers": coverage}


def _convert_stream(model, model_art, c: ConvertConfig, calibration, parity, extra: dict, ctx: RunContext):
    """The streaming form: calibrated on states met while streaming real clips, judged by its
    logits after the last frame against the Keras clip model's, with the state layout recorded."""
    from tfkit.convert.parity import compare_logits, first_output, run_stream_tflite, state_quantization
    from tfkit.convert.tflite import convert_keras
    from tfkit.models import VideoModelSpec, stream_states, to_streaming
    from tfkit.models.streaming import stream_calibration

    spec = VideoModelSpec.from_dict(model_art.manifest.spec["model"])
    stream = to_streaming(model, spec)  # refuses non-causal models with a clear message
    samples = list(stream_calibration(stream, calibration, every=2))
    flatbuffer = convert_keras(stream, c.precision, calibration=samples)
    flatbuffer, _ = _rounded(flatbuffer, stream, samples, c, extra, ctx)
    ref = np.concatenate([first_output(model(x[None], training=False)) for x in parity])
    got = np.stack([run_stream_tflite(flatbuffer, x)[-1] for x in parity])
    report = compare_logits(ref, got, c.precision, what="Keras clip model", **c.parity_bars())
    quant = {r["state"]: r for r in state_quantization(flatbuffer)}
    states = [{**s.to_dict(), "quantization": quant.get(s.name)} for s in stream_states(stream)]
    # Runners must requantize a state whose output and input parameters differ (tfkit's do).
    return flatbuffer, report, {"frame_input": "frame", "logits_output": "logits", "states": states,
                                "requantize_states": any(not q["same"] for q in quant.values())}


# --keep-float times and judges each int8 variant as TFLite rounds it, and writes the variant it
# judged (--repair auto re-rounds its variants itself and records the chosen one's rounding).
_JUDGED = {"rounding": "nearest", "why": "keep_float judges each int8 variant as TFLite rounds it"}


def _rounded(flatbuffer: bytes, model, samples: list, c: ConvertConfig, extra: dict,
             ctx: RunContext) -> tuple[bytes, tuple | None]:
    """Post-training int8 with `rounding="optimized"`: kernels re-rounded for layer output error
    (tfkit.convert.rounding), the report in metrics["rounding"]; QAT models keep their learned grid.
    Returns (flatbuffer, the calibration it made: per-layer error reuses it, or None). A model the
    re-rounding cannot handle keeps TFLite's nearest rounding, with the reason recorded."""
    if c.precision != "int8" or c.qat_epochs:
        return flatbuffer, None
    if c.rounding == "nearest":
        extra["rounding"] = {"rounding": "nearest"}
        return flatbuffer, None
    from tfkit.convert.repair import calibrate
    from tfkit.convert.rounding import optimize_int8

    try:
        calibrated = calibrate(model, samples)
        rounded, report = optimize_int8(model, flatbuffer, samples, calibrated=calibrated)
    except Exception as e:  # noqa: BLE001  (the int8 file converted: kept as TFLite rounded it, with the why)
        first = first_line(e)
        extra["rounding"] = {"rounding": "nearest", "why": f"optimized rounding could not run on this model: {first}"}
        ctx.log(f"[convert] int8: {extra['rounding']['why']}; kept nearest rounding")
        return flatbuffer, None
    extra["rounding"] = report
    ctx.log(f"[convert] int8: optimized rounding of {report['layers']} kernel(s), {report['weights_changed']:.1%} "
            f"of weights moved, calibration output error x{report['output_error_ratio']:.2f}")
    return rounded, calibrated


REPAIR_MODES = ("off", "auto")


def check_repair_config(c) -> None:
    """ConvertConfig's repair fields: refused with one clear message before any work."""
    if c.repair not in REPAIR_MODES:
        raise UsageError(f"unknown repair {c.repair!r}; choose one of {', '.join(REPAIR_MODES)}")
    if not 0.0 <= c.repair_budget <= 1.0:
        raise UsageError(f"repair_budget={c.repair_budget} is an accuracy drop: pick 0..1 (0.01 = one point)")
    if c.repair == "off":
        return
    if c.precision != "int8" or c.form != "clip":
        raise UsageError("--repair auto applies to --precision int8 --form clip only")
    if c.qat_epochs or c.keep_float or c.sparse or not c.per_channel:
        raise UsageError("--repair auto chooses the float ops and the scale granularity itself: "
                         "drop --keep-float, --qat-epochs, --sparse and --no-per-channel")


def repair_step(model, calibration: np.ndarray, data_art, c, device, ctx) -> tuple[bytes, dict, dict]:
    """The convert step's `--repair auto`: (flatbuffer, metrics["repair"], metrics["layer_errors"]).
    The drop is judged on the step's calibration clips (drawn from the train split) with their
    labels; without a dataset, on the random calibration inputs by top-1 changes."""
    from tfkit.bench.timing import device_record
    from tfkit.convert.repair import repair_int8

    labels = None
    if data_art is not None:  # the labels of the clips the step drew (ConvertStep's _pick: same seed, same order)
        train = ClipSet.load_npz(data_art.file("train"))
        idx = np.sort(np.random.default_rng(c.seed).permutation(len(train.y))[:c.calibration_clips])
        if not np.array_equal(normalize(train.x[idx], data_art.manifest.spec["clip"]["normalization"]), calibration):
            raise ConversionError("repair: the calibration clips are not the train clips this step drew; "
                                  "cannot label them (report this as a tfkit bug)")
        labels = train.y[idx]
    flatbuffer, report = repair_int8(model, [x[None] for x in calibration], labels, budget=c.repair_budget,
                                     device=device, rounding=c.rounding, log=ctx.log)
    report["measured_on"]["split"] = "train (calibration clips)" if data_art is not None else "random calibration inputs"
    report["device"] = device_record(c.device)
    ch = report["chosen"]
    ctx.log(f"[convert] repair: int8 drop {report['before']['drop']:.4f} -> {ch['drop']:.4f} on the calibration clips "
            f"({ch['granularity']}, {ch['activations']} activations, kept float: {ch['kept_float'] or 'none'})"
            + ("" if report["within_budget"] else f"; NOT within the budget {c.repair_budget}: the best variant found"))
    layers = {"granularity": ch["granularity"], "samples": min(report["measured_on"]["clips"], 8),
              "metric": "channel_rel_error", "layers": report.pop("layers")}
    return flatbuffer, report, layers
