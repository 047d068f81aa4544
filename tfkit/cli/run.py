"""`tfkit run RECIPE` and `tfkit recipes`: run a YAML recipe (a file, or a shipped one by name), list
the shipped ones (converters/ in a checkout, packaged inside an installed wheel).

Example:
    $ tfkit run converters/tsm_mobilenet_v2_cpu-int8.yaml --set train.epochs=2 --out out/cpu
    $ tfkit run tsm_mobilenet_v2_cpu-int8 --dry-run
    $ tfkit recipes --write-readme README.md
"""
from __future__ import annotations

from pathlib import Path

import click
import yaml

from tfkit.cli.common import context, force_option, quiet_option
from tfkit.errors import InputPathError, RecipeError
from tfkit.recipe.shipped import resolve_recipe, shipped_recipe_folder

README_BEGIN, README_END = "<!-- recipes:begin -->", "<!-- recipes:end -->"


@click.command("run")
@click.argument("recipe")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: the recipe's `out`, else out/<recipe name>).")
@click.option("--set", "sets", multiple=True, metavar="ID.FIELD=VALUE",
              help="Override a step's config field, value read as YAML (repeatable), e.g. --set train.epochs=1.")
@click.option("--dry-run", is_flag=True, help="Check the recipe and print the plan; run nothing.")
@force_option
@quiet_option
def run(recipe, out, sets, dry_run, force, quiet):
    """Run RECIPE (a YAML file, or a shipped recipe's name from `tfkit recipes`) step by step into
    OUT/NN-<id>/. The whole recipe is checked before anything runs; a rerun reuses the steps whose
    inputs and config are unchanged."""
    from tfkit.recipe import load_recipe, run_recipe

    checked = load_recipe(resolve_recipe(recipe), overrides=parse_overrides(sets))
    if dry_run:
        click.echo("\n".join(checked.plan(out)))
        return
    result = run_recipe(checked, out, context(quiet), force=force)
    for step_id, art in result.artifacts.items():
        click.echo(f"{step_id}: {art.path}{'  (unchanged, reused)' if step_id in result.reused else ''}")


@click.command("recipes")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--write-readme", "readme", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table into this README between its recipe markers instead of printing it.")
@click.option("--path", "show_path", is_flag=True,
              help="Print the folder that holds the shipped recipes (copy one from there to edit it).")
def recipes(folder, readme, show_path):
    """List the recipes in FOLDER (default: the shipped ones, which an installed tfkit carries inside
    its package and a source checkout keeps in converters/) as a Markdown table, each one checked."""
    from tfkit.recipe import recipe_table

    folder = folder or shipped_recipe_folder()
    if show_path:
        click.echo(folder)
        return
    if readme is None:
        click.echo(recipe_table(folder), nl=False)
        return
    changed = write_readme_table(readme, folder)
    click.echo(f"{readme}: {'table updated' if changed else 'table already up to date'}")


def parse_overrides(items) -> dict:
    """["train.epochs=1", "int8.form=stream"] -> {"train.epochs": 1, "int8.form": "stream"} (values read as YAML)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or "." not in key:
            raise RecipeError(f"--set {item}: write STEP_ID.FIELD=VALUE, e.g. --set train.epochs=1")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RecipeError(f"--set {item}: the value is not valid YAML ({e})") from None
    return out


def readme_table(readme_text: str) -> str | None:
    """The text between the recipe markers of a README, or None without them."""
    begin, end = readme_text.find(README_BEGIN), readme_text.find(README_END)
    if begin < 0 or end < begin:
        return None
    return readme_text[begin + len(README_BEGIN):end].strip("\n") + "\n"


def write_readme_table(readme: Path, folder: Path) -> bool:
    """Put `recipe_table(folder)` between the README's markers; True if the file changed."""
    from tfkit.artifacts import write_text_atomic
    from tfkit.recipe import recipe_table

    text = Path(readme).read_text()
    if readme_table(text) is None:
        raise InputPathError(f"{readme} has no {README_BEGIN} ... {README_END} markers to write the table between")
    begin, end = text.find(README_BEGIN) + len(README_BEGIN), text.find(README_END)
    new = f"{text[:begin]}\n{recipe_table(folder)}{text[end:]}"
    if new != text:
        write_text_atomic(Path(readme), new)
    return new != text
