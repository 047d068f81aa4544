"""Recipes: an ordered list of steps as YAML, checked for fit before anything runs, then run step
by step into `out/NN-<id>/` (a rerun reuses each step whose inputs and config are unchanged).

A recipe names its model and target and lists steps; each step has an `id` (default: its step
name), a `step` (a registered step), `inputs` (ids of earlier steps) and `with` (its config).
Every mistake is a RecipeError that names the file, line, field path and the allowed values.

Example:
    >>> recipe = load_recipe("converters/tsm_mobilenet_v2_cpu-int8.yaml", overrides={"train.epochs": 1})  # doctest: +SKIP
    >>> run_recipe(recipe, Path("out/cpu")).artifacts["convert"].file("model")  # doctest: +SKIP
"""
from tfkit.recipe.check import check_recipe, load_recipe
from tfkit.recipe.run import recipe_table, run_recipe
from tfkit.recipe.schema import (
           TARGETS,
           Recipe,
           RecipeResult,
           RecipeStep,
           Target,
           config_class,
           output_kind,
           zoo_names,
)

__all__ = ["TARGETS", "Recipe", "RecipeResult", "RecipeStep", "Target", "check_recipe", "config_class", "load_recipe",
           "output_kind", "recipe_table", "run_recipe", "zoo_names"]
