"""Build hook, and the only reason this file exists (pyproject.toml holds everything else): the recipes
in converters/ ship inside the wheel as tfkit/_recipes/*.yaml.

converters/ stays at the top of the repo as the one source of the recipes; they are copied into the
package only at build time, so no YAML is committed twice. An editable install builds no package
files, and tfkit then reads converters/ in place (tfkit/recipe/shipped.py looks in both).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "converters"
PACKAGED = Path("tfkit", "_recipes")  # inside the package; tfkit.recipe.shipped.PACKAGED_DIR names it too


class BuildPyWithRecipes(build_py):
    """setuptools' build_py, then converters/*.yaml copied to <build_lib>/tfkit/_recipes/."""

    def run(self):
        super().run()
        for recipe, packaged in self._recipes():
            self.mkpath(str(packaged.parent))
            self.copy_file(str(recipe), str(packaged))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [str(packaged) for _, packaged in self._recipes()]

    def _recipes(self) -> list[tuple[Path, Path]]:
        """(converters/NAME.yaml, <build_lib>/tfkit/_recipes/NAME.yaml) pairs; none for an editable install."""
        if getattr(self, "editable_mode", False):
            return []
        recipes = sorted(SOURCE.glob("*.yaml"))
        if not recipes:  # e.g. an sdist made without MANIFEST.in's converters/: a wheel without recipes
            raise FileNotFoundError(f"{SOURCE}: no recipes (*.yaml) to put in the package")
        return [(recipe, Path(self.build_lib) / PACKAGED / recipe.name) for recipe in recipes]


setup(cmdclass={"build_py": BuildPyWithRecipes})
