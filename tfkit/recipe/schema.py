"""Recipe data: targets, the step and recipe dataclasses, what each step outputs, and where in a
file a field is (for error messages)."""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tfkit.errors import InputPathError, RecipeError, UnknownNameError
from tfkit.registry import Registry
from tfkit.steps import STEPS
from tfkit.types import ArtifactKind

TOP_KEYS = ("name", "description", "model", "target", "out", "steps")
REQUIRED_TOP = ("description", "model", "steps")
STEP_KEYS = ("id", "step", "inputs", "with")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # no ".": `--set ID.FIELD=VALUE` splits on it


@dataclass(frozen=True)
class Target:
    """Where a recipe's artifact is meant to run: the precision it needs and the delegate that runs it."""

    name: str
    precision: str
    delegate: str
    description: str


TARGETS: Registry[Target] = Registry("target")
for _t in (
    Target("cpu-int8", "int8", "xnnpack", "phone or desktop CPU through XNNPACK, full-integer int8"),
    Target("gpu-fp16", "float16", "gpu", "mobile GPU delegate, float16 weights"),
    Target("nnapi-int8", "int8", "nnapi", "Android NNAPI accelerators, full-integer int8 (NNAPI is deprecated)"),
    Target("edgetpu-int8", "int8", "edgetpu", "Coral Edge TPU: every tensor 8-bit, every shape static"),
    Target("board-int8", "int8", "xnnpack", "an ARM board's CPU (Raspberry Pi class) through XNNPACK"),
):
    TARGETS.register(_t.name)(_t)

# What each step writes, known before it runs (a step class may instead declare `output_kind`).
# An unknown kind is terminal: no later step may take it as an input.
OUTPUT_KINDS = {"data": "dataset", "build": "keras_model", "import": "keras_model", "train": "keras_model",
                "prune": "keras_model", "structured": "keras_model", "cluster": "keras_model",
                "lowrank": "keras_model", "distill": "keras_model", "convert": "tflite_model",
                "check": "coverage", "bench": "benchmark", "report": "report"}
# Steps whose class does not annotate `config: SomeConfig`.
CONFIG_CLASSES = {"data": ("tfkit.steps.data", "DataConfig")}
BUILD_FROM_DATA = ("num_classes", "frames", "size")  # a build spec's fields the data decides when omitted
CLIP_ONLY = ("bench",)  # steps that feed whole clips to each .tflite (the bench runner scores accuracy)


def _device(value) -> None:
    from tfkit.bench.devices.kinds import check_runnable, resolve

    check_runnable(resolve(value))


def _normalization(value) -> None:
    from tfkit.types import Normalization

    if value not in [n.value for n in Normalization]:
        raise UnknownNameError("normalization", value, [n.value for n in Normalization])


def _source(value) -> None:
    if value != "builtin" and not Path(value).is_dir():
        raise InputPathError(f"no folder {value!r} (relative paths start from the current folder); give "
                             "'builtin' or a folder laid out as root/<class>/<video>")


# Values that a config's own checks leave to run time or word without the allowed values: (step, field) -> check.
VALUE_CHECKS = {("bench", "device"): _device, ("data", "normalization"): _normalization, ("data", "source"): _source}


@dataclass(frozen=True)
class RecipeStep:
    id: str
    step: str
    inputs: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)  # as written, with --set overrides applied
    derived: dict = field(default_factory=dict)  # omitted fields taken from the data (frames, size, ...)
    classes_from: str | None = None  # build: num_classes from this data step's classes, when omitted

    def make_config(self, num_classes: int | None = None):
        """The step's config dataclass (None for a step without one)."""
        cls = config_class(STEPS.get(self.step))
        if cls is None:
            return None
        extra = {"num_classes": num_classes} if num_classes is not None else {}
        return cls(**{**self.derived, **extra, **self.config})


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    model: str
    target: str | None
    out: Path
    steps: tuple[RecipeStep, ...]
    source: Path | None = None

    def step(self, id_: str) -> RecipeStep:
        return next(s for s in self.steps if s.id == id_)

    def values(self, step: str, name: str) -> list:
        """The value of config field `name` in every `step` step, defaults included: e.g. ("convert", "precision")."""
        return [getattr(s.make_config(), name) for s in self.steps if s.step == step]

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "model": self.model, "target": self.target,
                "out": str(self.out),
                "steps": [{"id": s.id, "step": s.step, "inputs": list(s.inputs), "with": dict(s.config)}
                          for s in self.steps]}

    def plan(self, out: Path | None = None) -> list[str]:
        """One line per step: folder, step <- inputs, the config as written and what the data decides."""
        out = Path(out) if out is not None else self.out
        rows = []
        for n, s in enumerate(self.steps, 1):
            config = [f"{k}={v}" for k, v in s.config.items()]
            config += [f"{k}={v} (from data)" for k, v in s.derived.items()]
            if s.classes_from and "num_classes" not in s.config:
                config.append(f"num_classes=<classes of {s.classes_from}>")
            rows.append((str(out / f"{n:02d}-{s.id}"), f"{s.step} <- {', '.join(s.inputs) or '-'}", " ".join(config)))
        wide = [max(len(r[c]) for r in rows) for c in (0, 1)]
        return [f"recipe {self.name} (model {self.model}, target {self.target or '-'}): {self.description}",
                *(f"  {a:<{wide[0]}}  {b:<{wide[1]}}  {c}".rstrip() for a, b, c in rows)]


@dataclass(frozen=True)
class RecipeResult:
    recipe: Recipe
    out: Path
    artifacts: dict  # step id -> Artifact, in recipe order
    reused: tuple[str, ...]  # ids of the steps a rerun found unchanged


def config_class(step_cls):
    """The frozen config dataclass a step takes (its `config: SomeConfig` annotation), or None."""
    try:
        hint = typing.get_type_hints(step_cls).get("config")
    except (NameError, TypeError):
        hint = None
    if hint is None and step_cls.name in CONFIG_CLASSES:
        import importlib

        module, attr = CONFIG_CLASSES[step_cls.name]
        hint = getattr(importlib.import_module(module), attr)
    return hint if dataclasses.is_dataclass(hint) else None


def output_kind(step_cls) -> ArtifactKind | None:
    kind = getattr(step_cls, "output_kind", None) or OUTPUT_KINDS.get(step_cls.name)
    try:
        return ArtifactKind(kind) if kind is not None else None
    except ValueError:
        return None


def zoo_names() -> list[str]:
    from tfkit.models import model_names
    from tfkit.models.spec import TEMPORAL_MODULES

    return sorted(f"{t}_{f}" for f in model_names() for t in TEMPORAL_MODULES)


# --- where: file, line and field path in error messages ------------------------------------------


def _dotted(path: tuple) -> str:
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else f".{p}" if text else str(p)
    return text or "(top level)"


def _choices(what: str, name, known) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Allowed: {', '.join(known) or '(none)'}."


class _Where:
    def __init__(self, source: str, lines: dict, overridden: dict):
        self.source, self.lines, self.overridden = source, lines, overridden

    def error(self, path: tuple, message: str, line: int | None = None) -> RecipeError:
        if line is None:
            line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), None)
        where = f"{self.source}:{line}" if line else self.source
        origin = f" (from --set {self.overridden[path]})" if path in self.overridden else ""
        return RecipeError(f"{where}: {_dotted(path)}{origin}: {message}")


def _lines(node, path: tuple, out: dict, where: _Where) -> dict:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            sub = (*path, key.value)
            if key.value in seen:
                raise where.error(sub, f"duplicate key (first on line {out[sub]}); keep one",
                                  line=key.start_mark.line + 1)
            seen.add(key.value)
            out[sub] = key.start_mark.line + 1
            _lines(value, sub, out, where)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _lines(value, (*path, i), out, where)
    return out


def parse_yaml(text: str, source: str):
    """YAML `text` as data, plus where each key path lies in `source`, so that every later error
    can say file:line (recipes and devices.yaml). Invalid YAML is a RecipeError with its line."""
    where = _Where(source, {}, {})
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem += f" ({context} on line {start.line + 1})"
        raise RecipeError(f"{source}{line}: invalid YAML: {problem}") from None
    if node is not None:
        _lines(node, (), where.lines, where)
    return data, where
