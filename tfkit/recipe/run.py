"""Running a checked recipe step by step, and the table of the shipped recipes."""
from __future__ import annotations

from pathlib import Path

from tfkit.recipe.check import check_recipe, load_recipe
from tfkit.recipe.schema import Recipe, RecipeResult
from tfkit.steps import STEPS, RunContext, run_step

# --- running --------------------------------------------------------------------------------------


def run_recipe(recipe, out: Path | None = None, ctx: RunContext | None = None, *, force: bool = False,
               overrides: dict | None = None) -> RecipeResult:
    """Check, then run every step in order into `out/NN-<id>/` (default: the recipe's `out`);
    steps whose inputs and config are unchanged since the last run are reused, not rerun."""
    ctx = ctx if ctx is not None else RunContext()
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides=overrides)
    elif overrides:
        recipe = check_recipe(recipe.to_dict(), source=recipe.source, overrides=overrides)
    out = Path(out) if out is not None else recipe.out
    artifacts, reused = {}, []
    for n, s in enumerate(recipe.steps, 1):
        classes = None
        if s.classes_from and "num_classes" not in s.config:
            classes = len(artifacts[s.classes_from].manifest.spec["classes"])
        folder = out / f"{n:02d}-{s.id}"
        before = _stamp(folder)
        step = STEPS.get(s.step)(s.make_config(num_classes=classes))
        artifacts[s.id] = run_step(step, [artifacts[i] for i in s.inputs], folder, ctx, force=force)
        if before is not None and before == _stamp(folder):
            reused.append(s.id)
    return RecipeResult(recipe, out, artifacts, tuple(reused))


def _stamp(folder: Path):
    from tfkit.artifacts import MANIFEST

    try:
        st = (folder / MANIFEST).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


# --- the shipped recipes --------------------------------------------------------------------------


def recipe_table(folder: Path) -> str:
    """A Markdown table of every recipe in `folder` (each one checked), links relative to its parent."""
    rows = ["| recipe | model | target | precision | form | delegate | description |",
            "|---|---|---|---|---|---|---|"]
    for path in sorted(Path(folder).glob("*.yaml")):
        r = load_recipe(path)

        def cell(values) -> str:
            return ", ".join(dict.fromkeys(str(v) for v in values)) or "-"

        description = " ".join(r.description.split()).replace("|", "\\|")
        rows.append(f"| [{path.name}]({Path(folder).name}/{path.name}) | {r.model} | {r.target or '-'} | "
                    f"{cell(r.values('convert', 'precision'))} | {cell(r.values('convert', 'form'))} | "
                    f"{cell(r.values('check', 'delegate'))} | {description} |")
    return "\n".join(rows) + "\n"

