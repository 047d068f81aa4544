"""Dynamic block skipping by early exit: the run-time variant of block removal. A cheap classifier
is attached after an intermediate layer of a trained model; at run time the first part (trunk +
exit head) always runs, and only clips it is not confident about continue through the rest.

`split_for_exit` cuts any Functional model at a layer into a *head* model (input -> exit logits,
features) and a *tail* model (features -> the original logits), two TFLite files a runtime calls
in turn; the features cross between them, so nothing is computed twice. Expected latency is
head + (1 - exit rate) x tail.

Example:
    >>> parts = split_for_exit(model, "s2b2_add")                                   # doctest: +SKIP
    >>> parts = train_exit(parts, data.train, data.val)                             # doctest: +SKIP
    >>> threshold = choose_threshold(parts, data.val, max_drop=0.01)                 # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfkit.errors import UsageError
from tfkit.optimize.graph import Graph, LayerNode, rebuild


@dataclass(frozen=True)
class ExitParts:
    head: object  # input -> [exit_logits, features]
    tail: object  # features (fixed batch) -> logits
    at: str


def _exit_head(model, x):
    """Pool space (and time, for a time-folded zoo model), then one Dense."""
    from tfkit._compat.keras import keras
    from tfkit.models.layers import layer

    K = keras()
    y = K.layers.GlobalAveragePooling2D(name="exit_frame_pool")(x) if len(x.shape) == 4 else x
    unfold = [lay for lay in model.layers if type(lay).__name__ == "UnfoldTime"]
    if unfold:
        y = layer("UnfoldTime")(frames=unfold[0].frames, name="exit_unfold_time")(y)
        y = K.layers.GlobalAveragePooling1D(name="exit_temporal_pool")(y)
    classes = int(model.outputs[0].shape[-1])
    return K.layers.Dense(classes, name="exit_logits")(y)


def split_for_exit(model, at: str, sample: np.ndarray | None = None) -> ExitParts:
    """Cut `model` after layer `at`. Refused if a later layer also reads a tensor from before `at`
    (a skip connection across the cut)."""
    from tfkit._compat.keras import keras
    from tfkit.models.clone import clone_wrapped
    from tfkit.models.layers import custom_objects
    from tfkit.optimize.blocks import tensor_shapes

    graph = Graph.of(model, "early exit")
    if at not in graph.nodes:
        raise UsageError(f"no layer {at!r} to attach an early exit to")
    before = graph.ancestors((at, 0))
    after = [n for n in graph.order if n not in before]
    for name in after:
        for ref in graph.nodes[name].inputs:
            if ref[0] in before and ref != (at, 0):
                raise UsageError(f"cannot exit after {at!r}: layer {name!r} also reads {ref[0]!r} from before it")
    K = keras()
    trunk = clone_wrapped(model, lambda fresh, original: fresh, custom_objects())  # never train the input's layers
    features = trunk.get_layer(at).output
    head = K.Model(trunk.inputs, [_exit_head(trunk, features), features], name=f"{model.name}_exit_head")
    shape = tensor_shapes(model, [(at, 0)], sample if sample is not None else
                          np.zeros((1, *model.inputs[0].shape[1:]), np.float32))[(at, 0)]
    source = "exit_features"
    nodes = [LayerNode(**vars(graph.nodes[n])) for n in after]
    for node in nodes:
        node.inputs = [(source, 0) if r == (at, 0) else r for r in node.inputs]
    tail_graph = Graph({**graph.model_config, "input_layers": [[source, 0, 0]]}, nodes, graph.outputs[:1])
    tail_graph.insert_before(after[0], LayerNode(source, "InputLayer", {
        "batch_input_shape": list(shape), "dtype": "float32", "sparse": False, "ragged": False}, [], {}))
    tail = rebuild(tail_graph, model, name=f"{model.name}_exit_tail")
    return ExitParts(head, tail, at)


def train_exit(parts: ExitParts, train, val, *, epochs: int = 4, progress: bool = True,
               symmetries: dict | None = None, seed: int = 0) -> ExitParts:
    """Train only the exit classifier (the trunk frozen, BatchNorm in inference mode), on the
    clips' own normalization, seeded by `seed`."""
    from tfkit._compat.keras import keras
    from tfkit.train import TrainConfig, train_classifier

    K = keras()
    for layer in parts.head.layers:
        layer.trainable = layer.name == "exit_logits"
    exit_only = K.Model(parts.head.inputs, parts.head.outputs[0])
    train_classifier(exit_only, train, val, TrainConfig(epochs=epochs, learning_rate=3e-3, weight_decay=0.0, seed=seed),
                     progress=progress, symmetries=symmetries)
    return parts


def run_dynamic(head_fn, tail_fn, clips: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and exited mask: the exit's class where its softmax max >= threshold, else the
    tail's on the head's features. `head_fn(clip[None]) -> (exit_logits, features)`."""
    from tfkit.models.early_exit import softmax

    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"early-exit threshold must be in (0, 1], got {threshold}")
    preds, exited = [], []
    for clip in clips:
        logits, features = head_fn(clip[None])
        p = softmax(np.asarray(logits, np.float32).reshape(-1))
        done = bool(p.max() >= threshold)
        preds.append(int(p.argmax()) if done else int(np.argmax(tail_fn(features))))
        exited.append(done)
    return np.array(preds), np.array(exited)


def choose_threshold(head_fn, tail_fn, x: np.ndarray, y: np.ndarray, *, max_drop: float = 0.01,
                     candidates=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)) -> tuple[float, dict]:
    """The confidence threshold that exits most often on (x, y) while its accuracy stays within
    `max_drop` of running the tail always (threshold 1.0 exits only on certainty). Among thresholds
    that exit equally often there, the highest: the lower ones gain nothing on this data and exit
    more, unchecked, on new clips (with an undertrained exit that exits on no validation clip, the
    lowest would be the riskiest pick). Returns (threshold, {threshold: (accuracy, exit rate)})."""
    table = {}
    for t in sorted(candidates):
        preds, exited = run_dynamic(head_fn, tail_fn, x, t)
        table[t] = (float(np.mean(preds == y)), float(np.mean(exited)))
    full = table[max(table)][0]
    ok = [t for t in sorted(table) if table[t][0] >= full - max_drop]
    most = max(table[t][1] for t in ok)
    return max(t for t in ok if table[t][1] == most), table
