"""Where the shipped recipes are: inside the installed package (tfkit/_recipes/, which setup.py fills
from converters/ when a wheel is built), else converters/ beside the package (a source checkout, as an
editable install runs from). converters/ is the one source; the packaged copy exists only in builds.

Example:
    >>> shipped_recipe_folder().name in {"_recipes", "converters"}
    True
"""
from __future__ import annotations

from pathlib import Path

from tfkit.errors import InputPathError, UnknownNameError

PACKAGED_DIR = "_recipes"  # setup.py's PACKAGED names the same folder


def recipe_folders() -> tuple[Path, ...]:
    """The folders looked in, in order. The packaged one comes first: beside an installed package
    (site-packages/) a `converters` folder would belong to someone else."""
    package = Path(__file__).resolve().parents[1]
    return package / PACKAGED_DIR, package.parent / "converters"


def shipped_recipe_folder() -> Path:
    """The first of `recipe_folders()` that holds recipes (*.yaml)."""
    folders = recipe_folders()
    for folder in folders:
        if any(folder.glob("*.yaml")):
            return folder
    raise InputPathError(
        f"no shipped recipes in {' or '.join(str(f) for f in folders)}: this tfkit was installed without "
        "them (install it from a source tree or an sdist that has converters/, e.g. `pip install .`); "
        "a recipe file of your own runs as `tfkit run FILE.yaml`")


def resolve_recipe(name_or_path) -> Path:
    """A recipe file path, or a shipped recipe's name (`tsm_mobilenet_v2_cpu-int8`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folder = shipped_recipe_folder()
    shipped = folder / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    if path.suffix or path.parent != Path("."):
        raise InputPathError(f"{path}: no such recipe file; list the shipped ones with `tfkit recipes`")
    raise UnknownNameError("recipe", str(name_or_path), [p.stem for p in sorted(folder.glob("*.yaml"))])
