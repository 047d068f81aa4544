"""`convert` step: a trained Keras model (+ dataset for calibration and parity) -> a .tflite artifact
that passed its parity bar.

Example:
    >>> run_step(ConvertStep(ConvertConfig(precision="int8")), [model_art, data_art], Path("out/05-int8"))  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tfkit.artifacts import write_bytes_atomic
from tfkit.convert.variants import VARIANTS
from tfkit.data import ClipSet, normalize
from tfkit.errors import UsageError
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.types import ArtifactKind

TFLITE_FILE = "model.tflite"


@dataclass(frozen=True)
class ConvertConfig:
    precision: str = "float32"
    calibration_clips: int = 128  # drawn from the training split
    parity_clips: int = 64  # drawn from the validation split
    seed: int = 0

    def __post_init__(self):
        VARIANTS.get(self.precision)  # unknown name -> UnknownNameError with suggestions
        if self.calibration_clips < 1 or self.parity_clips < 1:
            raise UsageError("calibration_clips and parity_clips must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def _pick(clips: ClipSet, n: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).permutation(len(clips.y))[:n]
    return clips.x[np.sort(idx)]


@STEPS.register("convert")
class ConvertStep(Step):
    """Convert a Keras model to TFLite in one precision and check parity. Inputs: [keras model, dataset]."""

    name = "convert"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: ConvertConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit._compat.keras import versions
        from tfkit.convert.parity import TFLiteModel, check_parity
        from tfkit.convert.tflite import convert_keras
        from tfkit.models.io import load_model

        c: ConvertConfig = self.config
        model_art, data_art = inputs
        model = load_model(model_art.file("model"))
        norm = data_art.manifest.spec["clip"]["normalization"]
        calibration = normalize(_pick(ClipSet.load_npz(data_art.file("train")), c.calibration_clips, c.seed), norm)
        parity = normalize(_pick(ClipSet.load_npz(data_art.file("val")), c.parity_clips, c.seed), norm)
        ctx.log(f"[convert] {c.precision}: converting"
                + (f" (calibrating on {len(calibration)} clips)" if VARIANTS.get(c.precision).needs_calibration else ""))
        flatbuffer = convert_keras(model, c.precision, calibration=(x[None] for x in calibration))
        write_bytes_atomic(workdir / TFLITE_FILE, flatbuffer)
        report = check_parity(model, flatbuffer, parity, c.precision)
        ctx.log(f"[convert] {c.precision}: parity ok ({report.threshold})")
        tfl = TFLiteModel(flatbuffer)
        spec = {**model_art.manifest.spec, "precision": c.precision,
                "input": {"name": tfl.input["name"], "shape": [int(s) for s in tfl.input["shape"]],
                          "dtype": np.dtype(tfl.input["dtype"]).name,
                          "quantization": [float(q) for q in tfl.input["quantization"]]}}
        metrics = {"size_bytes": len(flatbuffer), "parity": report.to_dict(), "ops": tfl.op_counts(),
                   "float_activation_tensors": tfl.float_activation_count()}
        return StepOutput(ArtifactKind.TFLITE_MODEL, {"model": TFLITE_FILE}, spec, metrics, versions())
