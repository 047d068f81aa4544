"""Small video generation models: frame interpolation and x2/x4 super-resolution.

Both predict a residual on top of a fixed, parameter-free baseline built into the graph, so an
untrained model already (nearly) equals the baseline and int8 only has to carry a small correction:

- "interp": two frames -> the middle one = 0.5 * (a + b) + a small U-Net's correction.
- "sr_x2", "sr_x4": low-res -> high-res = bilinear upsampling (RESIZE_BILINEAR) + a residual
  computed at low resolution (a linear 5x5 path plus a small conv body) and moved to high
  resolution by DEPTH_TO_SPACE. `tfkit.gen.train.fit_linear_path` solves the linear path in
  closed form on the training footage.

tf_keras Functional, no Lambda layers, ReLU only (fused into the convs); every op is a TFLite
int8 builtin that XNNPACK takes. Fully convolutional: build with `size=None` to train on patches,
then `with_size()` gives the static-shape copy the TFLite converter needs.

Example:
    >>> model = GEN_MODELS.get("sr_x2")(size=(120, 160))  # doctest: +SKIP
    >>> model.output_shape
    (None, 240, 320, 3)
"""
from __future__ import annotations

from collections.abc import Callable

from tfkit.errors import UsageError
from tfkit.registry import Registry

GEN_MODELS: Registry[Callable] = Registry("generation model")

INTERP_INPUTS = ("frame_a", "frame_b")


def _hw(size: int | tuple[int, int] | None, multiple: int, what: str) -> tuple[int | None, int | None]:
    if size is None:
        return None, None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < multiple or w < multiple or h % multiple or w % multiple:
        raise UsageError(f"{what} needs height and width divisible by {multiple}, got {h}x{w}; "
                         f"use e.g. {max(h // multiple, 1) * multiple}x{max(w // multiple, 1) * multiple}.")
    return int(h), int(w)


def _conv(K, channels: int, name: str, *, kernel: int = 3, strides: int = 1, relu: bool = True):
    # He init: with Keras' default Glorot init the signal shrinks ~2x per ReLU layer and the
    # U-Net's residual (and its gradients) vanish, so training never leaves the baseline.
    return K.layers.Conv2D(channels, kernel, strides=strides, padding="same", name=name,
                           activation="relu" if relu else None, kernel_initializer="he_normal")


def _zero_conv(K, channels: int, name: str):
    """The last conv of a residual branch starts near zero (the untrained model is within ~1e-3
    of the baseline) but not at zero: exact zeros give every earlier layer a zero gradient at
    the first step, and Adam then blows the second step's tiny gradients up to full-size steps."""
    return K.layers.Conv2D(channels, 3, padding="same", name=name,
                           kernel_initializer=K.initializers.RandomNormal(stddev=1e-3, seed=0))


@GEN_MODELS.register("interp")
def build_interpolator(size: int | tuple[int, int] | None = None, channels: int = 24, *,
                       name: str = "interp"):
    """(frame_a, frame_b) in [0, 1] -> the frame halfway between them.

    A U-Net on 1/2, 1/4 and 1/8 resolution (strided convs down, DEPTH_TO_SPACE up) sees about
    70 px around each pixel, enough to follow motion of several pixels, and predicts a correction
    to the linear blend; a last DEPTH_TO_SPACE brings it to full resolution. Nothing runs at full
    resolution but that sub-pixel step and the two ADDs. `size` (H, W) must be divisible by 8;
    None builds a fully convolutional model for training on patches.
    """
    from tfkit._compat.keras import keras
    from tfkit.models.layers import layer

    K = keras()
    if channels < 4:
        raise UsageError(f"channels must be >= 4, got {channels}")
    h, w = _hw(size, 8, "the interpolator")
    c, c2 = int(channels), 2 * int(channels)
    a = K.Input((h, w, 3), name=INTERP_INPUTS[0])
    b = K.Input((h, w, 3), name=INTERP_INPUTS[1])
    blend = K.layers.Average(name="blend")([a, b])
    x = K.layers.Concatenate(name="pair")([a, b])
    e1 = _conv(K, c, "down2", strides=2)(x)
    e1 = _conv(K, c, "enc2")(e1)
    e2 = _conv(K, c2, "down4", strides=2)(e1)
    e2 = _conv(K, c2, "enc4")(e2)
    e3 = _conv(K, c2, "down8", strides=2)(e2)
    e3 = _conv(K, c2, "enc8a")(e3)
    e3 = _conv(K, c2, "enc8b")(e3)
    u2 = layer("DepthToSpace")(2, name="up4")(_conv(K, 4 * c2, "up4_conv", kernel=1)(e3))
    d2 = _conv(K, c2, "dec4")(K.layers.Add(name="skip4")([u2, e2]))
    u1 = layer("DepthToSpace")(2, name="up2")(_conv(K, 4 * c, "up2_conv", kernel=1)(d2))
    d1 = _conv(K, c, "dec2")(K.layers.Add(name="skip2")([u1, e1]))
    sub = _zero_conv(K, 12, "subpixel")(d1)
    residual = layer("DepthToSpace")(2, name="to_full")(sub)
    out = K.layers.Add(name="middle")([blend, residual])
    return K.Model([a, b], out, name=name)


def build_super_resolution(scale: int = 2, size: int | tuple[int, int] | None = None, channels: int = 32,
                           blocks: int = 3, *, name: str | None = None):
    """Low-res (H, W, 3) in [0, 1] -> high-res (H*scale, W*scale, 3).

    `size` is the low-res (H, W); the residual is computed at low resolution (a linear 5x5 conv
    plus `blocks` 3x3 ReLU convs with a skip) and upsampled by DEPTH_TO_SPACE, then added to the
    bilinear upsampling.
    """
    from tfkit._compat.keras import keras
    from tfkit.models.layers import layer

    K = keras()
    if scale not in (2, 3, 4):
        raise UsageError(f"super-resolution scale must be 2, 3 or 4, got {scale}")
    if channels < 4 or blocks < 1:
        raise UsageError(f"need channels >= 4 and blocks >= 1, got channels={channels}, blocks={blocks}")
    h, w = _hw(size, 1, "super-resolution")
    lr = K.Input((h, w, 3), name="low_res")
    up = K.layers.UpSampling2D(scale, interpolation="bilinear", name="bilinear")(lr)
    f0 = _conv(K, channels, "head", kernel=5)(lr)
    x = f0
    for i in range(blocks):
        x = _conv(K, channels, f"body{i}")(x)
    x = K.layers.Add(name="body_skip")([x, f0])
    # A linear 5x5 path learns the sharpening that undoes the downscale's blur quickly; the
    # non-linear body adds what no linear filter can (edges, texture).
    linear = K.layers.Conv2D(3 * scale * scale, 5, padding="same", name="linear",
                             kernel_initializer=K.initializers.RandomNormal(stddev=1e-3, seed=1))(lr)
    sub = K.layers.Add(name="subpixel_sum")([_zero_conv(K, 3 * scale * scale, "subpixel")(x), linear])
    residual = layer("DepthToSpace")(scale, name="to_space")(sub)
    out = K.layers.Add(name="high_res")([up, residual])
    return K.Model(lr, out, name=name or f"sr_x{scale}")


@GEN_MODELS.register("sr_x2")
def build_sr_x2(size: int | tuple[int, int] | None = None, channels: int = 32, **kw):
    return build_super_resolution(2, size, channels, **kw)


@GEN_MODELS.register("sr_x4")
def build_sr_x4(size: int | tuple[int, int] | None = None, channels: int = 32, **kw):
    return build_super_resolution(4, size, channels, **kw)


def with_size(model, builder_name: str, size: int | tuple[int, int], **kw):
    """A static-shape copy of a fully convolutional `model` (same weights) for conversion."""
    fixed = GEN_MODELS.get(builder_name)(size=size, **kw)
    fixed.set_weights(model.get_weights())
    return fixed


def has_lambda(model) -> bool:
    from tfkit._compat.keras import keras

    return any(isinstance(lyr, keras().layers.Lambda) for lyr in model.layers)
