"""Saving and loading tfkit's own tf_keras models (safe_mode on; only tfkit's layers allowed).

Example:
    >>> save_model(model, Path("out/model.keras")); model = load_model(Path("out/model.keras"))  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from tfkit.atomic import atomic_path
from tfkit.errors import InputPathError


def save_model(model, path: Path) -> None:
    """Atomic `.keras` save (temp file in the same folder, then rename), without timestamps:
    the same model saves to the same bytes, so manifests' sha256 show when two runs agree."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
        _drop_timestamps(tmp)


# tf_keras stamps a .keras zip with the time of saving (metadata.json's "date_saved", which no
# loader reads, and the weights entry's mtime): identical weights hashed differently on each save.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date, as tf_keras gives its other entries


def _drop_timestamps(path: Path) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME)
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, data)


def load_model(path: Path, *, trust: bool = False):
    """`trust=True` (safe_mode off) only for a file whose source the user trusted at `tfkit import`
    (a Lambda layer's bytecode runs on load); steps pass it from the artifact's spec, see `trusted`."""
    from tfkit._compat.keras import keras
    from tfkit.models.layers import custom_objects

    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"no model file at {path}")
    try:
        return keras().models.load_model(path, custom_objects=custom_objects(), compile=False, safe_mode=not trust)
    except (ValueError, OSError, TypeError) as e:
        raise InputPathError(f"{path} is not a loadable tfkit Keras model: {str(e).splitlines()[0]}") from e


def trusted(art) -> bool:
    """Whether a Keras model artifact came from a user model imported with trust (`tfkit import
    --trust-code`); its later loads may then run the code it carries."""
    return bool(art.manifest.spec.get("trusted", False))
