"""Bring your own model: `.keras`, `.h5`, tf_keras SavedModel folders and in-memory tf_keras
models, checked as plain JSON before anything is deserialized.

Loading a Keras file can run code it carries: a Lambda layer holds marshalled Python bytecode that
runs on load (.h5 and SavedModel do so even with safe_mode on; .keras before safe_mode, CVE-2024-3660),
and a config's `module` field makes the loader import any module and call what it finds there
(the CVE-2025-1550 pattern: tf_keras 2.21 still imports it). So a file is refused, with the layer
named, unless every object in its config is a tf_keras built-in or one of tfkit's own layers; a
Lambda or custom class loads only with `trust=True` (CLI `--trust-code`), and custom classes also
need `custom_objects`. Keras 3 files are refused with what to do: TFMOT, and so tfkit, needs tf_keras.

Example:
    >>> loaded = open_user_model("my_model.keras")  # doctest: +SKIP
    >>> loaded.info.kind, loaded.info.input_shape  # doctest: +SKIP
    ('video', (None, 8, 64, 64, 3))
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.errors import ModelFileError, first_line

# Values, not code: tf_keras turns these into constants, tuples, shapes and tensor specs (when they
# name no module: a module makes the loader import it).
PLAIN_VALUES = frozenset({"__tuple__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "TensorShape",
                          "TypeSpec", "CompositeTensor"})
CODE_CLASSES = frozenset({"Lambda", "__lambda__"})  # carry Python bytecode that runs on load
KIND_BY_RANK = {4: "image", 5: "video"}  # (N, H, W, C) and (N, T, H, W, C)
TRUST_HINT = "pass trust=True (CLI: --trust-code) only for files you trust"
KERAS3_HINT = (
    "tfkit works on tf_keras (Keras 2) models, because TFMOT (pruning, clustering, QAT) accepts only "
    "those; Keras 3 files cannot be loaded by tf_keras. Rebuild the model with `import tf_keras as keras` "
    "(same layers), copy the weights over (`tf_model.set_weights(keras3_model.get_weights())`) and save "
    "it with tf_model.save('model.keras'); or load a file written by tf_keras with "
    "`tf_keras.models.load_model` and pass that model or its re-saved file")


class UserModelFormat(str, enum.Enum):
    KERAS = "keras"
    H5 = "h5"
    SAVED_MODEL = "saved_model"
    IN_MEMORY = "in_memory"


@dataclass(frozen=True)
class UserModelInfo:
    """What was loaded: its format, input and output shapes (batch None), image or video, trust."""

    format: UserModelFormat
    input_shape: tuple
    output_shapes: tuple
    kind: str  # "image" (N, H, W, C) or "video" (N, T, H, W, C)
    trusted: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["format"] = self.format.value
        d["input_shape"] = list(self.input_shape)
        d["output_shapes"] = [list(s) for s in self.output_shapes]
        return d


@dataclass(frozen=True)
class LoadedUserModel:
    model: object  # a tf_keras.Model
    info: UserModelInfo


@dataclass(frozen=True)
class _Found:
    """One serialized object in a config: its class (or function) name and where it sits."""

    class_name: str
    layer: str  # the nearest enclosing layer's name, for the message
    module: str | None
    registered_name: str | None
    is_function: bool


def load_user_model(source, *, trust: bool = False, custom_objects: Mapping[str, type] | None = None):
    """A tf_keras model from a `.keras`/`.h5` file, a tf_keras SavedModel folder or a tf_keras model
    object; refuses unsafe or unusable ones with ModelFileError (see the module docstring).

    Example:
        >>> model = load_user_model("classifier.h5")  # doctest: +SKIP
    """
    return open_user_model(source, trust=trust, custom_objects=custom_objects).model


def open_user_model(source, *, trust: bool = False,
                    custom_objects: Mapping[str, type] | None = None) -> LoadedUserModel:
    """`load_user_model` plus a UserModelInfo describing what was loaded."""
    from tfkit._compat.keras import is_tf_keras_model

    custom = dict(custom_objects or {})
    if isinstance(source, (str, Path)):
        path = Path(source)
        fmt, objects, version = _read_config(path)
        if version is not None and version >= 3:
            raise ModelFileError(f"{path} was saved by Keras {version}. {KERAS3_HINT}.")
        needs_trust = _check_objects(objects, str(path), trust=trust, custom=custom, live=False)
        model = _load(path, fmt, trust=needs_trust, custom=custom)
    elif is_tf_keras_model(source):
        fmt, model = UserModelFormat.IN_MEMORY, source
        try:
            config = model.get_config()
        except NotImplementedError as e:
            raise ModelFileError(
                f"cannot read the config of {type(model).__name__} {model.name!r} ({e}); tfkit re-saves every "
                "model it takes: build it with the functional API or Sequential, and give custom layers "
                "get_config()") from None
        needs_trust = _check_objects(list(_walk(config, "")), f"model {model.name!r}", trust=trust, custom=custom,
                                     live=True)
    elif _is_keras3_object(source):
        raise ModelFileError(f"{type(source).__name__} is a Keras 3 model. {KERAS3_HINT}.")
    else:
        raise ModelFileError(f"cannot load a model from a {type(source).__name__}: pass a path to a .keras/.h5 "
                             "file or a SavedModel folder, or a tf_keras.Model")
    return LoadedUserModel(model, describe(model, fmt, trusted=needs_trust))


def describe(model, fmt: UserModelFormat, *, trusted: bool) -> UserModelInfo:
    """The UserModelInfo of a tf_keras model; ModelFileError if tfkit cannot feed it. `trusted`: it
    carries code (Lambda, custom classes) that the user trusted, so its later loads need that trust."""
    if len(model.inputs or ()) != 1:
        raise ModelFileError(f"model {model.name!r} has {len(model.inputs or ())} inputs; tfkit takes models with one "
                             "image (N,H,W,C) or video (N,T,H,W,C) input")
    shape = tuple(None if d is None else int(d) for d in model.inputs[0].shape)
    kind = KIND_BY_RANK.get(len(shape))
    if kind is None or any(d is None for d in shape[1:]):
        raise ModelFileError(
            f"model {model.name!r} has input shape {shape}; tfkit takes one image (N,H,W,C) or video "
            "(N,T,H,W,C) input with every dimension but the batch fixed (rebuild it with e.g. "
            "keras.Input((8, 64, 64, 3)))")
    outputs = tuple(tuple(None if d is None else int(d) for d in t.shape) for t in model.outputs)
    return UserModelInfo(fmt, shape, outputs, kind, bool(trusted))


def source_sha256(path: str | Path) -> str:
    """sha256 of a model file, or of a SavedModel folder's files (relative names and contents)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"no model at {path}")
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


# --- reading configs without deserializing -------------------------------------------------------


def _read_config(path: Path) -> tuple[UserModelFormat, list[_Found], int | None]:
    """(format, serialized objects, Keras major version or None) of a model file or folder."""
    if not path.exists():
        raise ModelFileError(f"no model at {path}")
    if path.is_dir():
        return UserModelFormat.SAVED_MODEL, *_read_saved_model(path)
    reader = _FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise ModelFileError(f"{path}: unknown model file type {path.suffix!r}; tfkit takes .keras, .h5/.hdf5 "
                             "files and SavedModel folders")
    return reader(path)


def _read_keras_zip(path: Path) -> tuple[UserModelFormat, list[_Found], int | None]:
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            metadata = json.loads(z.read("metadata.json")) if "metadata.json" in z.namelist() else {}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise ModelFileError(f"{path} is not a Keras .keras file (a zip with config.json): {e}") from e
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: config.json holds no model config")
    config.pop("compile_config", None)  # loaded with compile=False: never deserialized
    objects = list(_walk(config, ""))
    return UserModelFormat.KERAS, objects, _major(metadata.get("keras_version")) or _keras3_marks(objects)


def _read_h5(path: Path) -> tuple[UserModelFormat, list[_Found], int | None]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw, version = f.attrs.get("model_config"), f.attrs.get("keras_version")
    except OSError as e:
        raise ModelFileError(f"{path} is not an HDF5 Keras model file: {e}") from e
    if raw is None:
        raise ModelFileError(f"{path} holds no model config (weights only?); save the whole model with "
                             "model.save('model.h5') or pass a .keras file")
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as e:
        raise ModelFileError(f"{path}: unreadable model_config ({e})") from e
    objects = list(_walk(config, ""))
    version = version.decode() if isinstance(version, bytes) else version
    return UserModelFormat.H5, objects, _major(version) or _keras3_marks(objects)


def _read_saved_model(path: Path) -> tuple[list[_Found], int | None]:
    if not (path / "saved_model.pb").is_file():
        raise ModelFileError(f"{path} is a folder without saved_model.pb, so not a SavedModel")
    meta = path / "keras_metadata.pb"
    if not meta.is_file():
        raise ModelFileError(
            f"{path} is a plain TensorFlow SavedModel without Keras metadata (keras_metadata.pb), e.g. one "
            "written by Keras 3 model.export() or tf.saved_model.save(). tfkit needs the Keras model itself "
            "(it re-saves, trains, prunes and checks parity against it): save it from tf_keras with "
            "model.save('model.keras'). To only convert this SavedModel, use "
            "tf.lite.TFLiteConverter.from_saved_model(folder) directly")
    from tfkit._compat.keras import keras

    keras()
    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    try:
        proto.ParseFromString(meta.read_bytes())
        nodes = [json.loads(n.metadata) for n in proto.nodes]
    except Exception as e:  # a protobuf DecodeError or bad JSON: either way unreadable
        raise ModelFileError(f"{meta} is unreadable Keras metadata: {e}") from e
    objects = [o for node in nodes for o in _walk(node, "")]
    versions = [v for n in nodes if isinstance(n, dict) and (v := _major(n.get("keras_version")))]
    return objects, max(versions, default=None) or _keras3_marks(objects)


_FILE_READERS = {".keras": _read_keras_zip, ".h5": _read_h5, ".hdf5": _read_h5}


def _walk(node, layer: str) -> Iterator[_Found]:
    """Every serialized object (a dict with a string class_name) anywhere in a config."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, layer)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    if isinstance(class_name, str):
        inner = node.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        layer = name if isinstance(name, str) else layer
        is_function = class_name == "function"
        yield _Found(inner if is_function and isinstance(inner, str) else class_name, layer,
                     node.get("module"), node.get("registered_name"), is_function)
    for key, value in node.items():
        if key != "class_name":
            yield from _walk(value, layer)


def _major(version) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _keras3_marks(objects: list[_Found]) -> int | None:
    """3 when a config has Keras 3's own marks (its dtype policies, keras.src modules), else None."""
    for o in objects:
        if o.class_name == "DTypePolicy" or (o.module or "").startswith("keras.src."):
            return 3
    return None


def _is_keras3_object(obj) -> bool:
    return any(c.__module__.startswith("keras.") and c.__name__ == "Model" for c in type(obj).__mro__)


# --- the safety check ----------------------------------------------------------------------------


@functools.cache
def _builtin_names() -> tuple[frozenset[str], frozenset[str]]:
    """(tf_keras built-in class names, activation function names): layers, initializers,
    regularizers, constraints, dtype policies, models; activations by name."""
    import inspect

    from tfkit._compat.keras import keras

    K = keras()
    from tf_keras.src.layers import serialization as layer_serialization

    layer_serialization.populate_deserializable_objects()
    classes = set(layer_serialization.LOCAL.ALL_OBJECTS)
    for module in (K.layers, K.initializers, K.regularizers, K.constraints, K.mixed_precision, K.models):
        classes.update(a for a in dir(module) if inspect.isclass(getattr(module, a)))
    classes.update(("Functional", "Sequential", "Model"))
    functions = {a for a in dir(K.activations) if inspect.isfunction(getattr(K.activations, a))}
    return frozenset(classes), frozenset(functions - {"get", "serialize", "deserialize"})


def _is_plain_value(o: _Found) -> bool:
    return o.class_name in PLAIN_VALUES and o.module is None and o.registered_name is None


def _is_keras_module(module: str | None) -> bool:
    return module is None or module in ("keras", "tf_keras") or module.startswith(("keras.", "tf_keras."))


def _unknown(o: _Found, classes: frozenset[str], functions: frozenset[str], ours: set[str]) -> str | None:
    """Why tfkit does not know this object, or None if it is a built-in or one of tfkit's layers.

    Both the name and the module count: tf_keras imports a non-Keras `module` and takes the class
    (or the `registered_name`) from it, so a known class name from another module is not known."""
    if o.class_name == "__typespec__":
        return None if (o.module or "").startswith(("tensorflow.", "tf_keras.", "keras.")) else \
            f"type spec from module {o.module}"
    if o.registered_name not in (None, o.class_name, "function"):
        return f"{o.class_name} registered as {o.registered_name}"
    if o.is_function:
        ok = o.class_name in functions and (_is_keras_module(o.module) or o.module == "builtins")
        return None if ok else f"function {o.class_name} from module {o.module}"
    if o.class_name in ours and o.module in (None, _TFKIT_LAYERS):
        return None
    if o.class_name in classes and _is_keras_module(o.module):
        return None
    return o.class_name if _is_keras_module(o.module) else f"{o.class_name} from module {o.module}"


_TFKIT_LAYERS = "tfkit.models.layers"


def _check_objects(objects: list[_Found], where: str, *, trust: bool, custom: dict, live: bool) -> bool:
    """Refuse code (Lambda) and classes tfkit does not know, unless trusted; with trust, a class from
    a file must still be resolvable from `custom` (or tf_keras's registry of serializable objects).
    Returns whether the trust was needed."""
    from tfkit.models.layers import custom_objects as tfkit_layers

    classes, functions = _builtin_names()
    ours = set(tfkit_layers())
    code, unknown = {}, {}
    for o in objects:
        if o.class_name in CODE_CLASSES:
            code.setdefault(o.layer or "?", "Lambda")
        elif _is_plain_value(o):
            continue
        elif why := _unknown(o, classes, functions, ours):
            unknown.setdefault(o.layer or "?", why)
    if (code or unknown) and not trust:
        named = ", ".join(f"{layer!r} ({cls})" for layer, cls in {**unknown, **code}.items())
        why = ("Lambda layers carry Python bytecode that runs on load" if code else
               "Custom classes run their own code on load")
        raise ModelFileError(f"{where} holds layers tfkit will not load by default: {named}. {why}; {TRUST_HINT}"
                             + ("; custom classes also need custom_objects={name: class}" if unknown else "") + ".")
    if live or not unknown:
        return bool(code or unknown)
    from tfkit._compat.keras import keras

    registered = keras().saving.get_registered_object
    missing = {layer: why for layer, why in unknown.items()
               if not any(n in custom or registered(n) is not None
                          for o in objects if o.layer == layer for n in (o.class_name, o.registered_name) if n)}
    if missing:
        named = ", ".join(f"{layer!r} ({why})" for layer, why in missing.items())
        raise ModelFileError(f"{where}: custom classes {named} are not known; pass custom_objects={{name: class}} "
                             "(Python API) or register them with tf_keras.saving.register_keras_serializable")
    return True


# --- loading -------------------------------------------------------------------------------------


def _load(path: Path, fmt: UserModelFormat, *, trust: bool, custom: dict):
    from tfkit._compat.keras import is_tf_keras_model, keras
    from tfkit.models.layers import custom_objects as tfkit_layers

    objects = {**tfkit_layers(), **custom}
    K = keras()
    try:
        if fmt is UserModelFormat.KERAS:
            model = K.models.load_model(path, custom_objects=objects, compile=False, safe_mode=not trust)
        else:  # .h5 and SavedModel ignore safe_mode: the config check above is their guard
            model = K.models.load_model(path, custom_objects=objects, compile=False)
    except Exception as e:  # a foreign file can fail in any way; say which file
        first = first_line(e)
        raise ModelFileError(f"{path} does not load as a tf_keras model: {first}") from e
    if not is_tf_keras_model(model):
        raise ModelFileError(f"{path} loaded as a {type(model).__name__}, not a Keras model; save it from tf_keras "
                             "with model.save('model.keras')")
    return model
