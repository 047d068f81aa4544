"""Small video generation models: frame interpolation and x2/x4 super-resolution.

Both start from a fixed, parameter-free method built into the graph (block matching; bilinear
upsampling), so an untrained model already works and training and int8 only refine it:

- "interp": two frames -> the middle one, each pixel a convex combination of the blends
  0.5 * (a[p + d] + b[p - d]) along the motion paths d of a 5x5 window, weighted by built-in
  block matching that a small U-Net refines.
- "sr_x2", "sr_x4": low-res -> high-res = bilinear upsampling (RESIZE_BILINEAR) + a residual
  computed at low resolution (a linear 5x5 path plus a small conv body) and moved to high
  resolution by DEPTH_TO_SPACE. `tfkit.gen.train.fit_linear_path` solves the linear path in
  closed form on the training footage.

tf_keras Functional, no Lambda layers; every op is a TFLite int8 builtin (XNNPACK takes the
interpolator's int8 graph in 2 partitions, the others' in 1). Fully convolutional: build with
`size=None` to train on patches, then `with_size()` gives the static-shape copy the TFLite
converter needs.

Example:
    >>> model = GEN_MODELS.get("sr_x2")(size=(120, 160))  # doctest: +SKIP
    >>> model.output_shape
    (None, 240, 320, 3)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

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


def tap_kernels(kernel: int, groups: int, *, mirrored: bool = False):
    """One-hot (k, k, groups, k*k) depthwise kernels: output channel g*k*k + t is input channel g
    at offset d_t = (t // k - k//2, t % k - k//2) from each pixel (-d_t when `mirrored`)."""
    taps = kernel * kernel
    eye = np.eye(taps, dtype=np.float32).reshape(kernel, kernel, 1, taps)
    if mirrored:
        eye = eye[::-1, ::-1]
    return np.repeat(eye, groups, axis=2)


def _sum_groups(K, groups: int, size: int, name: str):
    """A fixed 1x1 conv adding, for each t < size, channels t, size + t, ... (groups of `size`)."""
    conv = K.layers.Conv2D(size, 1, use_bias=False, name=name)
    return conv, [np.tile(np.eye(size, dtype=np.float32), (groups, 1))[None, None]]


def _channel_blocks(K, block: int, blocks: int, name: str):
    """A fixed 1x1 conv adding each block of `block` consecutive channels into one output."""
    conv = K.layers.Conv2D(blocks, 1, use_bias=False, name=name)
    return conv, [np.kron(np.eye(blocks, dtype=np.float32), np.ones((block, 1), np.float32))[None, None]]


@GEN_MODELS.register("interp")
def build_interpolator(size: int | tuple[int, int] | None = None, channels: int = 24, *, kernel: int = 5,
                       sharpness: float = 30.0, cost_cap: float = 1.0, name: str = "interp"):
    """(frame_a, frame_b) in [0, 1] -> the frame halfway between them, by motion-compensated blending.

    For each of the k*k offsets d (|d| <= k//2 px per half-step) the candidate middle pixel is
    0.5 * (a[p + d] + b[p - d]), the blend along a straight motion path through p, and its cost is
    |a[p + d] - b[p - d]| summed over colours (a cost volume, as in block matching). Per-pixel
    weights over the candidates are a softmax of logits = -(sharpness) x the cost averaged over
    5x5 px (a trainable depthwise conv: block matching at the start of training) + a U-Net's
    correction (1/2, 1/4, 1/8 resolution, strided convs down, DEPTH_TO_SPACE up, near zero at
    init) that sees both frames and the cost volume. The output is the weighted sum of the
    candidates, so the model moves pixels instead of painting them.

    Every op is an int8 builtin: offsets come from fixed one-hot DEPTHWISE_CONV_2D kernels, |x| from
    two RELUs, colour sums and the weighted sum from fixed 1x1 CONV_2Ds and MUL. `size` (H, W)
    must be divisible by 8; None builds a fully convolutional model for training on patches.
    """
    from tfkit._compat.keras import keras
    from tfkit.models.layers import layer

    K = keras()
    if channels < 4:
        raise UsageError(f"channels must be >= 4, got {channels}")
    if kernel < 1 or kernel % 2 == 0:
        raise UsageError(f"kernel must be an odd number of pixels >= 1, got {kernel}")
    h, w = _hw(size, 8, "the interpolator")
    c, c2, taps = int(channels), 2 * int(channels), kernel * kernel
    a = K.Input((h, w, 3), name=INTERP_INPUTS[0])
    b = K.Input((h, w, 3), name=INTERP_INPUTS[1])
    fixed = []  # (layer, weights) set once the graph is built

    def offsets(x, mirrored, name):
        conv = K.layers.DepthwiseConv2D(kernel, padding="same", depth_multiplier=taps, use_bias=False, name=name)
        fixed.append((conv, [tap_kernels(kernel, 3, mirrored=mirrored)]))
        return conv(x)  # (H, W, 3 * taps), channel colour * taps + t

    na, nb = offsets(a, False, "offsets_a"), offsets(b, True, "offsets_b")
    candidates = K.layers.Average(name="candidates")([na, nb])
    absdiff = K.layers.Add(name="abs_diff")([
        K.layers.ReLU(name="diff_pos")(K.layers.Subtract(name="a_minus_b")([na, nb])),
        K.layers.ReLU(name="diff_neg")(K.layers.Subtract(name="b_minus_a")([nb, na]))])
    # cost = min(sum over colours of |a[p + d] - b[p - d]|, cost_cap), stored as 6 * cost / cost_cap
    # (a CONV_2D with a fused RELU6): beyond the cap a candidate is simply wrong, and the bounded
    # range keeps int8 logits fine-grained (an uncapped cost spreads them over ~100 units).
    colour_sum, weights = _sum_groups(K, 3, taps, "cost")
    fixed.append((colour_sum, [weights[0] * (6.0 / cost_cap)]))
    cost = K.layers.ReLU(6.0, name="cost_capped")(colour_sum(absdiff))  # (H, W, taps)
    box = np.full((5, 5, taps, 1), -sharpness * cost_cap / 6.0 / 25.0, np.float32)
    match = K.layers.DepthwiseConv2D(5, padding="same", name="block_match",
                                     depthwise_initializer=K.initializers.Constant(box))(cost)

    # Frames and cost volume enter the U-Net by separate convs: a CONCATENATION would make the
    # int8 converter give both one scale, and the frames (and so the model's inputs) would get the
    # cost's 6x coarser one.
    pair = K.layers.Concatenate(name="pair")([a, b])
    e1 = K.layers.Add(name="down2")([_conv(K, c, "down2_frames", strides=2, relu=False)(pair),
                                     _conv(K, c, "down2_cost", strides=2, relu=False)(cost)])
    e1 = _conv(K, c, "enc2")(K.layers.ReLU(name="down2_relu")(e1))
    e2 = _conv(K, c2, "down4", strides=2)(e1)
    e2 = _conv(K, c2, "enc4")(e2)
    e3 = _conv(K, c2, "down8", strides=2)(e2)
    e3 = _conv(K, c2, "enc8a")(e3)
    e3 = _conv(K, c2, "enc8b")(e3)
    u2 = layer("DepthToSpace")(2, name="up4")(_conv(K, 4 * c2, "up4_conv", kernel=1)(e3))
    d2 = _conv(K, c2, "dec4")(K.layers.Add(name="skip4")([u2, e2]))
    u1 = layer("DepthToSpace")(2, name="up2")(_conv(K, 4 * c, "up2_conv", kernel=1)(d2))
    d1 = _conv(K, c, "dec2")(K.layers.Add(name="skip2")([u1, e1]))
    correction = K.layers.Conv2D(4 * taps, 1, name="kernel_logits",
                                 kernel_initializer=K.initializers.RandomNormal(stddev=1e-3, seed=0))(d1)
    logits = K.layers.Add(name="logits")([match, layer("DepthToSpace")(2, name="to_full")(correction)])
    weights = K.layers.Softmax(axis=-1, name="kernel_weights")(logits)
    tiled = K.layers.Concatenate(name="weights_per_colour")([weights, weights, weights])
    weighted = K.layers.Multiply(name="weighted")([candidates, tiled])
    total, total_weights = _channel_blocks(K, taps, 3, "middle")
    out = total(weighted)
    model = K.Model([a, b], out, name=name)
    for conv, value in [*fixed, (total, total_weights)]:
        conv.set_weights(value)
        conv.trainable = False
    return model


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
