"""Loading a recipe and checking it for fit before anything runs: keys, step names, config
fields and values, inputs and their kinds, the target."""
from __future__ import annotations

import copy
import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from tfkit.errors import RecipeError, TfkitError
from tfkit.models.spec import VideoModelSpec
from tfkit.recipe.schema import (
    BUILD_FROM_DATA,
    CLIP_ONLY,
    ID_PATTERN,
    REQUIRED_TOP,
    STEP_KEYS,
    TARGETS,
    TOP_KEYS,
    VALUE_CHECKS,
    Recipe,
    RecipeStep,
    _choices,
    _Where,
    config_class,
    output_kind,
    parse_yaml,
    zoo_names,
)
from tfkit.steps import STEPS
from tfkit.types import ArtifactKind

# --- loading and checking -------------------------------------------------------------------------


def load_recipe(path, *, overrides: dict | None = None) -> Recipe:
    """Read and check a recipe file, or a shipped recipe by name (`tsm_mobilenet_v2_cpu-int8`, as in a
    wheel install); `overrides` like {"train.epochs": 1} are checked the same way."""
    from tfkit.recipe.shipped import resolve_recipe

    path = resolve_recipe(path)
    data, where = parse_yaml(path.read_text(), str(path))
    return check_recipe(data, source=path, overrides=overrides, _where=where)


def check_recipe(data, *, source: Path | None = None, overrides: dict | None = None, _where=None) -> Recipe:
    """Check recipe data (as YAML gives it) for fit, before anything runs; returns the Recipe."""
    where = _where or _Where(str(source or "<recipe>"), {}, {})
    if not isinstance(data, dict):
        raise where.error((), f"a recipe is a mapping with keys {', '.join(TOP_KEYS)}; got "
                              f"{type(data).__name__ if data is not None else 'an empty file'}")
    data = _apply_overrides(copy.deepcopy(data), overrides or {}, where)
    for key in data:
        if key not in TOP_KEYS:
            raise where.error((key,), _choices("key", key, TOP_KEYS))
    for key in REQUIRED_TOP:
        if key not in data:
            raise where.error((key,), f"missing; a recipe needs {', '.join(REQUIRED_TOP)}")
    for key in ("name", "description", "model", "target", "out"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise where.error((key,), f"must be a string, got {data[key]!r}")
    target = data.get("target")
    if target is not None and target not in TARGETS:
        raise where.error(("target",), _choices("target", target, TARGETS.names()))
    steps = data["steps"]
    if not isinstance(steps, list) or not steps:
        raise where.error(("steps",), "must be a non-empty list of steps")
    checked: list[RecipeStep] = []
    static: dict[str, _Static] = {}
    all_ids = [s.get("id", s.get("step")) for s in steps if isinstance(s, dict)]
    for i, raw in enumerate(steps):
        step, info = _check_step(raw, ("steps", i), checked, static, all_ids, where)
        checked.append(step)
        static[step.id] = info
    name = data.get("name") or (source.stem if source else "recipe")
    recipe = Recipe(name=name, description=data["description"], model=data["model"], target=target,
                    out=Path(data.get("out") or f"out/{name}"), steps=tuple(checked), source=source)
    _check_whole(recipe, static, where)
    return recipe


def _apply_overrides(data: dict, overrides: dict, where: _Where) -> dict:
    steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    ids = [s.get("id", s.get("step")) if isinstance(s, dict) else None for s in steps]
    for key, value in overrides.items():
        step_id, _, name = str(key).partition(".")
        if not name:
            raise RecipeError(f"{where.source}: --set {key}: write STEP_ID.FIELD=VALUE, e.g. train.epochs=1")
        if step_id not in ids:
            raise RecipeError(f"{where.source}: --set {key}: {_choices('step id', step_id, [i for i in ids if i])}")
        i = ids.index(step_id)
        config = steps[i].setdefault("with", {})
        if isinstance(config, dict):
            config[name] = value
            where.overridden[("steps", i, "with", name)] = f"{key}={value!r}"
    return data


@dataclass(frozen=True)
class _Static:
    """What is known about a step's output before it runs."""

    kind: ArtifactKind | None
    shape: tuple | None = None  # the clip shape (T, H, W, 3) a dataset holds or a model takes
    spec: object = None  # the VideoModelSpec a model came from
    form: str | None = None  # a .tflite's form (clip | stream)
    config: object = None


def _check_step(raw, path: tuple, earlier: list[RecipeStep], static: dict, all_ids: list, where: _Where):
    if not isinstance(raw, dict):
        raise where.error(path, f"a step is a mapping with keys {', '.join(STEP_KEYS)}; got {raw!r}")
    for key in raw:
        if key not in STEP_KEYS:
            raise where.error((*path, key), _choices("step key", key, STEP_KEYS))
    if "step" not in raw:
        raise where.error((*path, "step"), f"missing; one of {', '.join(STEPS.names())}")
    name = raw["step"]
    if name not in STEPS:
        raise where.error((*path, "step"), _choices("step", name, STEPS.names()))
    step_cls = STEPS.get(name)
    step_id = raw.get("id", name)
    if not isinstance(step_id, str) or not ID_PATTERN.fullmatch(step_id):
        raise where.error((*path, "id"), f"{step_id!r} is not a usable id (letters, digits, '_' and '-')")
    if step_id in static:
        raise where.error((*path, "id"), f"{step_id!r} is already the id of an earlier step; give each step its own id")
    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise where.error((*path, "inputs"), f"must be a list of earlier step ids, got {inputs!r}")
    for j, ref in enumerate(inputs):
        if ref not in static:
            what = (f"{ref!r} is this step or a later one; inputs must come from earlier steps" if ref in all_ids
                    else _choices("input", ref, list(static)))
            raise where.error((*path, "inputs", j), what)
    _check_kinds(step_cls, inputs, static, (*path, "inputs"), where)
    config = raw.get("with") or {}
    if not isinstance(config, dict):
        raise where.error((*path, "with"), f"must be a mapping of {name}'s config fields, got {config!r}")
    derived, classes_from = _derived(name, inputs, earlier, static, config)
    cfg = _check_config(step_cls, config, derived, (*path, "with"), where)
    step = RecipeStep(id=step_id, step=name, inputs=tuple(inputs), config=dict(config), derived=derived,
                      classes_from=classes_from)
    return step, _static_of(step_cls, cfg, inputs, static, path, where)


def _check_kinds(step_cls, inputs, static, path, where):
    kinds = [static[i].kind for i in inputs]
    for j, (ref, kind) in enumerate(zip(inputs, kinds)):
        if kind is None:
            raise where.error((*path, j), f"{ref!r} writes an artifact no step takes as an input")
    want = list(step_cls.input_kinds)
    if not step_cls.accepts(kinds):
        got = ", ".join(f"{ref} ({k.value})" for ref, k in zip(inputs, kinds)) or "nothing"
        takes = ", ".join(k.value for k in want) or "no inputs"
        raise where.error(path, f"{step_cls.name} takes [{takes}]{' (last repeatable)' if step_cls.variadic else ''}"
                                f", got [{got}]")


def _derived(name: str, inputs, earlier: list[RecipeStep], static: dict, config: dict):
    """Config fields the data decides when a step omits them: a build spec's frames, size and classes
    (from the nearest earlier data step, as tfkit.pipeline does) and training's normalization."""
    derived, classes_from = {}, None
    data_inputs = [static[i].config for i in inputs if static[i].kind == ArtifactKind.DATASET and static[i].config]
    if config_class(STEPS.get(name)) is VideoModelSpec:
        data_step = next((s for s in reversed(earlier) if s.step == "data"), None)
        if data_step is not None:
            data_cfg = static[data_step.id].config
            derived = {"frames": data_cfg.frames, "size": data_cfg.size}
            classes_from = data_step.id
    elif data_inputs and "normalization" in _field_names(config_class(STEPS.get(name))):
        derived = {"normalization": data_inputs[0].normalization}
    return {k: v for k, v in derived.items() if k not in config}, classes_from


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if cls is not None else set()


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# How a YAML value must look for a field annotated with each scalar type (others: the config decides).
SCALARS = {bool: lambda v: isinstance(v, bool), int: lambda v: isinstance(v, int) and not isinstance(v, bool),
           float: _number, str: lambda v: isinstance(v, str), type(None): lambda v: v is None}


def _type_problem(hint, value) -> str | None:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for t in options:
        if isinstance(t, type) and issubclass(t, enum.Enum):
            allowed = [m.value for m in t]
            return None if value in allowed else _choices("value", value, allowed)
        if t not in SCALARS or SCALARS[t](value):
            return None
    names = " or ".join("null" if t is type(None) else getattr(t, "__name__", str(t)) for t in options)
    return f"expects {names}, got {value!r} ({type(value).__name__})"


def _check_config(step_cls, config: dict, derived: dict, path: tuple, where: _Where):
    cls = config_class(step_cls)
    if cls is None:
        if config:
            raise where.error(path, f"{step_cls.name} takes no config")
        return None
    fields = _field_names(cls)
    hints = typing.get_type_hints(cls)
    for key, value in config.items():
        if key not in fields:
            raise where.error((*path, key), _choices(f"{step_cls.name} field", key, fields))
        if hints.get(key) is float and isinstance(value, str):
            try:  # YAML 1.1 reads 1e-3 (no dot) as a string
                config[key] = value = float(value)
            except ValueError:
                pass
        problem = _type_problem(hints.get(key), value)
        if problem:
            raise where.error((*path, key), problem)
        if (step_cls.name, key) in VALUE_CHECKS:
            try:
                VALUE_CHECKS[step_cls.name, key](value)
            except TfkitError as e:
                raise where.error((*path, key), str(e)) from None
    try:
        return cls(**{**derived, **config})
    except (TfkitError, TypeError, ValueError) as e:
        culprit = next((k for k in config if _fails(cls, {**derived, k: config[k]})), None)
        raise where.error((*path, culprit) if culprit else path, str(e)) from None


def _fails(cls, values: dict) -> bool:
    try:
        cls(**values)
    except (TfkitError, TypeError, ValueError):
        return True
    return False


def _static_of(step_cls, cfg, inputs, static: dict, path: tuple, where: _Where) -> _Static:
    kind = output_kind(step_cls)
    ins = [static[i] for i in inputs]
    shapes = {(i, s.shape) for i, s in zip(inputs, ins) if s.shape is not None}
    if len({s for _, s in shapes}) > 1:
        described = ", ".join(f"{i} {list(s)}" for i, s in sorted(shapes))
        raise where.error((*path, "inputs"), f"clip shapes (frames, height, width, channels) differ: {described}; "
                                             "give build and data the same frames and size (or omit them in build)")
    if isinstance(cfg, VideoModelSpec):  # a model from a spec: its input shape is the spec's
        return _Static(kind, cfg.input_shape, spec=cfg, config=cfg)
    if kind == ArtifactKind.DATASET and hasattr(cfg, "clip"):
        return _Static(kind, cfg.clip.shape, config=cfg)
    model = next((s for s in ins if s.kind in (ArtifactKind.KERAS_MODEL, ArtifactKind.TFLITE_MODEL)), None)
    form = getattr(cfg, "form", None) if kind == ArtifactKind.TFLITE_MODEL else None
    if form == "stream" and model is not None and model.spec is not None and not model.spec.causal:
        raise where.error((*path, "with", "form"), "'stream' needs a causal model: set causal: true in the build step")
    if step_cls.name in CLIP_ONLY:
        for j, s in enumerate(ins):
            if s.form == "stream":
                raise where.error((*path, "inputs", j), f"{inputs[j]!r} is a stream-form model (frame + state "
                                  f"inputs); {step_cls.name} feeds it whole clips: give it a clip-form model")
    if model is not None and kind in (ArtifactKind.KERAS_MODEL, ArtifactKind.TFLITE_MODEL):
        return _Static(kind, model.shape, model.spec, form or model.form, cfg)  # same clips, same origin
    return _Static(kind, config=cfg)


def _check_whole(recipe: Recipe, static: dict, where: _Where) -> None:
    builds = any(isinstance(static[s.id].config, VideoModelSpec) for s in recipe.steps)
    if builds and recipe.model not in zoo_names():  # without a build step (e.g. import) any name will do
        raise where.error(("model",), _choices("model", recipe.model, zoo_names()))
    for i, s in enumerate(recipe.steps):
        spec = static[s.id].config
        if not isinstance(spec, VideoModelSpec):  # only steps that build a model from a spec
            continue
        if spec.name != recipe.model:
            raise where.error(("steps", i, "with", "family"), f"builds {spec.name!r} (temporal {spec.temporal}, "
                              f"family {spec.family}) but the recipe's model is {recipe.model!r}")
        if s.classes_from is None and not set(BUILD_FROM_DATA) <= set(s.config):
            raise where.error(("steps", i, "with"), f"no data step comes before this build, so give "
                              f"{', '.join(BUILD_FROM_DATA)} here")
    if recipe.target is None:
        return
    target = TARGETS.get(recipe.target)
    precisions = recipe.values("convert", "precision")
    if target.precision not in precisions:
        raise where.error(("target",), f"{target.name} runs {target.precision} models but no convert step writes "
                          f"one (precisions: {', '.join(precisions) or 'no convert step'})")
    delegates = recipe.values("check", "delegate")
    if delegates and target.delegate not in delegates:
        raise where.error(("target",), f"{target.name} runs on {target.delegate} but the check steps test "
                          f"{', '.join(delegates)}")


