"""PSNR of generation models against their naive baselines, for Keras and TFLite (float32, int8).

The baselines are computed here in numpy: the linear blend 0.5 * (a + b) for interpolation and
bicubic upsampling (Keys a=-0.5, half-pixel centres, the kernel `tf.image.resize(..., "bicubic")`
uses) for super-resolution. Predictions are clipped to [0, 1] before scoring, as an image would be.

Example:
    >>> psnr(np.zeros((1, 2, 2, 3)), np.full((1, 2, 2, 3), 0.1))
    20.0
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfkit.errors import DataError, UsageError


def psnr(pred: np.ndarray, target: np.ndarray, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels, pred clipped to [0, peak]; inf when equal.

    Frames are scored by one mean squared error over the whole set (not a mean of per-frame dBs).
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise UsageError(f"PSNR needs equal shapes, got {pred.shape} and {target.shape}")
    if pred.size == 0:
        raise DataError("PSNR of an empty set of frames; evaluate on at least one frame")
    mse = float(np.mean((np.clip(pred, 0.0, peak) - target) ** 2))
    return float("inf") if mse == 0 else round(float(10.0 * np.log10(peak * peak / mse)), 4)


def blend_baseline(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The naive middle frame: the pixel-wise average of its neighbours."""
    return 0.5 * (np.asarray(a, np.float32) + np.asarray(b, np.float32))


def _bicubic_matrix(n_in: int, scale: int) -> np.ndarray:
    """(n_in*scale, n_in) interpolation matrix; out-of-range taps are dropped and the rest
    renormalized, as TensorFlow's ResizeBicubic does at the borders."""
    out = np.arange(n_in * scale)
    centre = (out + 0.5) / scale - 0.5
    base = np.floor(centre).astype(np.int64)
    taps = base[:, None] + np.arange(-1, 3)[None]
    d = np.abs(centre[:, None] - taps)
    a = -0.5
    w = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                 np.where(d < 2, (((d - 5) * d + 8) * d - 4) * a, 0.0))
    w = w * ((taps >= 0) & (taps < n_in))
    w /= w.sum(axis=1, keepdims=True)
    m = np.zeros((len(out), n_in))
    np.add.at(m, (np.repeat(out, 4), np.clip(taps, 0, n_in - 1).ravel()), w.ravel())
    return m


def _bilinear_matrix(n_in: int, scale: int) -> np.ndarray:
    """(n_in*scale, n_in) half-pixel bilinear interpolation with clamped borders (RESIZE_BILINEAR)."""
    out = np.arange(n_in * scale)
    centre = (out + 0.5) / scale - 0.5
    lo = np.floor(centre).astype(np.int64)
    frac = centre - lo
    m = np.zeros((len(out), n_in))
    np.add.at(m, (out, np.clip(lo, 0, n_in - 1)), 1 - frac)
    np.add.at(m, (out, np.clip(lo + 1, 0, n_in - 1)), frac)
    return m


def bilinear_upsample(low_res: np.ndarray, scale: int) -> np.ndarray:
    """(N, H, W, C) -> (N, H*scale, W*scale, C) bilinear, as the SR models' RESIZE_BILINEAR path."""
    x = np.asarray(low_res, np.float64)
    mh, mw = _bilinear_matrix(x.shape[1], scale), _bilinear_matrix(x.shape[2], scale)
    return np.einsum("oh,nhwc,pw->nopc", mh, x, mw, optimize=True).astype(np.float32)


def bicubic_upsample(low_res: np.ndarray, scale: int) -> np.ndarray:
    """(N, H, W, C) -> (N, H*scale, W*scale, C) bicubic, float32 (not clipped)."""
    x = np.asarray(low_res, np.float64)
    if x.ndim != 4:
        raise UsageError(f"bicubic_upsample takes (N, H, W, C) frames, got shape {x.shape}")
    mh, mw = _bicubic_matrix(x.shape[1], scale), _bicubic_matrix(x.shape[2], scale)
    return np.einsum("oh,nhwc,pw->nopc", mh, x, mw, optimize=True).astype(np.float32)


class TFLiteRunner:
    """Any TFLite model through its signature: float arrays in (by input name), float out;
    integer inputs/outputs are quantized/dequantized with their own scale and zero point."""

    def __init__(self, flatbuffer: bytes, *, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        from tfkit.errors import ConversionError

        try:
            self.runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner()
        except (ValueError, RuntimeError) as e:
            raise ConversionError(f"the converted model does not load in LiteRT: {e}") from e
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()

    def __call__(self, **inputs: np.ndarray) -> np.ndarray:
        from tfkit.convert.parity import _to_dtype, _to_float

        missing = set(self.inputs) - set(inputs)
        if missing:
            raise UsageError(f"missing model input(s) {sorted(missing)}; the model takes {sorted(self.inputs)}")
        result = self.runner(**{k: _to_dtype(np.asarray(v, np.float32), self.inputs[k]) for k, v in inputs.items()})
        name = next(iter(self.outputs))
        return _to_float(result[name], self.outputs[name])


def predict_frames(fn: Callable[..., np.ndarray], inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Run a batch-1 model `fn(**{name: (1, ...)})` over N frames; returns (N, ...)."""
    n = len(next(iter(inputs.values())))
    return np.concatenate([np.asarray(fn(**{k: v[i:i + 1] for k, v in inputs.items()})) for i in range(n)])


def keras_fn(model) -> Callable[..., np.ndarray]:
    """A Keras model as fn(**inputs) keyed by its input names."""
    names = [t.name.split(":")[0] for t in model.inputs]

    def fn(**inputs):
        xs = [inputs[n] for n in names]
        return np.asarray(model(xs[0] if len(xs) == 1 else xs, training=False))

    return fn
