"""Cloning a Functional tf_keras model from fresh layers, some of them wrapped (TFMOT's pruning
and quantization wrappers), with the trained weights copied by layer name.

Wrapping the original layer objects would change the input model (TFMOT prunes the wrapped
layer's weights in place), so every technique that wraps layers clones first, through here.

Example:
    >>> clone = clone_wrapped(model, lambda fresh, original: fresh)  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable


def clone_wrapped(model, wrap: Callable[[object, object], object], scope: dict | None = None):
    """`model` rebuilt from fresh copies of its layers, each passed through `wrap(fresh,
    original)` (return `fresh` itself to leave it plain), inside the custom-object `scope`;
    weights are copied into every (wrapped) layer from the original of the same name."""
    from tfkit._compat.keras import keras

    K = keras()

    def clone(layer):
        return wrap(type(layer).from_config(layer.get_config()), layer)

    with K.utils.custom_object_scope(scope or {}):
        cloned = K.models.clone_model(model, clone_function=clone)
    for layer in cloned.layers:
        inner = getattr(layer, "layer", layer)
        source = model.get_layer(inner.name)
        if source.weights:
            inner.set_weights(source.get_weights())
    return cloned
