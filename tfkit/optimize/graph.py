"""A Functional tf_keras model as an editable graph of layer configs: the common ground of every
surgery that changes a model's structure (channel removal, residual-block removal, low-rank
splits). Edits happen on the model's config; `rebuild` makes a new model from it and copies the
weights, so the input model is never touched.

Tensors are named by (layer name, output index); shared layers (a layer called more than once)
are refused, since one edit would have to fit every call.

Example:
    >>> g = Graph.of(model)                      # doctest: +SKIP
    >>> g.consumers(("s1b1_add", 0))             # doctest: +SKIP
    ['s2b0_expand_conv']
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from tfkit.errors import UsageError

TensorRef = tuple[str, int]  # (producing layer name, output index)


@dataclass
class LayerNode:
    name: str
    class_name: str
    config: dict  # the layer's own config (filters, units, ...), editable
    inputs: list[TensorRef]
    call_kwargs: dict


def check_functional(model, what: str) -> None:
    """Refuse what no graph surgery can follow: Keras 3 and subclassed models, Lambda layers."""
    from tfkit._compat.keras import keras

    K = keras()
    if not isinstance(model, K.Model):
        raise UsageError(f"{what} needs a tf_keras model, got {type(model).__name__} (a Keras 3 model? "
                         "TFMOT and tfkit's surgery work on tf_keras only)")
    if not getattr(model, "_is_graph_network", False):
        raise UsageError(f"{model.name!r} is a subclassed model; {what} needs a Functional or Sequential "
                         "tf_keras model whose layers it can see")
    for layer in model.layers:
        if isinstance(layer, K.layers.Lambda):
            raise UsageError(f"Lambda layer {layer.name!r} cannot be followed by {what}; replace it with a "
                             "named layer class")


class Graph:
    """Layer configs in topological order, their input tensors, and the model's inputs/outputs."""

    def __init__(self, model_config: dict, nodes: list[LayerNode], outputs: list[TensorRef]):
        self.model_config = model_config
        self.nodes = {n.name: n for n in nodes}
        self.order = [n.name for n in nodes]
        self.outputs = outputs

    @classmethod
    def of(cls, model, what: str = "graph surgery") -> Graph:
        check_functional(model, what)
        config = copy.deepcopy(model.get_config())
        if "layers" not in config or "output_layers" not in config:  # Sequential: use its Functional form
            from tfkit._compat.keras import keras

            model = keras().Model(model.inputs, model.outputs, name=model.name)
            config = copy.deepcopy(model.get_config())
        nodes = []
        for entry in config["layers"]:
            inbound = entry.get("inbound_nodes") or []
            if len(inbound) > 1:
                raise UsageError(f"layer {entry['name']!r} is shared (called {len(inbound)} times); "
                                 f"{what} needs every layer called once")
            refs, kwargs = [], {}
            for item in (inbound[0] if inbound else []):
                if not isinstance(item, list | tuple) or len(item) < 3 or not isinstance(item[0], str):
                    raise UsageError(f"layer {entry['name']!r} ({entry['class_name']}) takes inputs {what} "
                                     "cannot follow (a TensorFlow op in the model?); use Keras layers")
                if int(item[1]) != 0:
                    raise UsageError(f"layer {entry['name']!r} reads a second call of {item[0]!r}; "
                                     f"{what} needs every layer called once")
                refs.append((item[0], int(item[2])))
                if len(item) > 3 and item[3]:
                    kwargs = dict(item[3])
            nodes.append(LayerNode(entry["name"], entry["class_name"], entry["config"], refs, kwargs))
        outputs = [(o[0], int(o[2])) for o in config["output_layers"]]
        return cls(config, nodes, outputs)

    def consumers(self, ref: TensorRef) -> list[str]:
        return [n for n in self.order if ref in self.nodes[n].inputs]

    def replace_input(self, old: TensorRef, new: TensorRef) -> None:
        """Every reader of `old` (layers and model outputs) reads `new` instead."""
        for node in self.nodes.values():
            node.inputs = [new if r == old else r for r in node.inputs]
        self.outputs = [new if r == old else r for r in self.outputs]

    def remove(self, names) -> None:
        for name in names:
            del self.nodes[name]
        self.order = [n for n in self.order if n in self.nodes]

    def insert_before(self, anchor: str, node: LayerNode) -> None:
        self.nodes[node.name] = node
        self.order.insert(self.order.index(anchor), node.name)

    def ancestors(self, ref: TensorRef) -> set[str]:
        seen, stack = set(), [ref[0]]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(r[0] for r in self.nodes[name].inputs)
        return seen

    def to_config(self) -> dict:
        by_name = {e["name"]: e for e in self.model_config["layers"]}
        layers = []
        for name in self.order:
            node = self.nodes[name]
            entry = copy.deepcopy(by_name.get(name, {})) or {
                "module": "keras.layers", "class_name": node.class_name, "registered_name": None}
            entry.pop("build_config", None)  # input shapes change; layers build from their inputs
            entry.update(name=name, class_name=node.class_name, config={**node.config, "name": name})
            entry["inbound_nodes"] = [[[r[0], 0, r[1], node.call_kwargs] for r in node.inputs]] if node.inputs else []
            layers.append(entry)
        return {**self.model_config, "layers": layers,
                "output_layers": [[r[0], 0, r[1]] for r in self.outputs]}


def rebuild(graph: Graph, source_model, weights: Callable[[str, object], list | None] | None = None,
            name: str | None = None):
    """A new model from `graph`, weights copied from `source_model` by layer name; `weights(name,
    new_layer)` may return the list to set instead (sliced or factorized kernels), or None."""
    from tfkit._compat.keras import keras
    from tfkit.models.layers import custom_objects

    K = keras()
    config = graph.to_config()
    if name:
        config["name"] = name
    with K.utils.custom_object_scope(custom_objects()):
        new = K.Model.from_config(config)
    known = {layer.name for layer in source_model.layers}
    for layer in new.layers:
        if not layer.weights:
            continue
        custom = weights(layer.name, layer) if weights else None
        if custom is not None:
            layer.set_weights(custom)
        elif layer.name in known:
            layer.set_weights(source_model.get_layer(layer.name).get_weights())
    return new
