"""The recipes ship in the wheel. A copy of the source tree is built the way `python -m build` does it
(sdist first, then the wheel from the unpacked sdist, so MANIFEST.in is tested too); the wheel holds
every converters/*.yaml byte for byte as tfkit/_recipes/. Then pip installs it into a fresh venv, and
that venv's own `tfkit` command, run far from any converters/ folder, lists them and runs one by name.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tfkit.recipe import recipe_table

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "converters").glob("*.yaml"))
TREE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
TREE_DIRS = ("tfkit", "converters")


def run(argv, **kw):
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kw)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


def only(paths):
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # A copy, not the checkout: a build in place leaves build/ behind, stale files in it end up in the
    # next wheel, and tests running in parallel would share it.
    tree = tmp_path_factory.mktemp("tree")
    for name in TREE_FILES:
        shutil.copy2(ROOT / name, tree / name)
    for name in TREE_DIRS:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "_recipes"))
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
        cwd=tree)
    with tarfile.open(only(dist.glob("*.tar.gz"))) as sdist:
        sdist.extractall(dist / "sdist", filter="data")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist,
         only((dist / "sdist").iterdir())])
    return only(dist.glob("*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel (pip-installed, --no-deps). Its dependencies come from this
    interpreter's site-packages, named in a .pth file: those folders are appended after the venv's own,
    and .pth files inside them are not read, so the checkout's editable tfkit stays out of sight."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel])
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = sysconfig.get_paths()
    (purelib / "tfkit_test_deps.pth").write_text(f"{here['purelib']}\n{here['platlib']}\n")
    return env


def in_venv(env: Path, *argv, cwd: Path):
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return run([env / "bin" / argv[0], *argv[1:]], cwd=cwd, env=environ)


def test_wheel_holds_every_recipe_byte_for_byte(wheel):
    assert len(SHIPPED) >= 30
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for recipe in SHIPPED:
            assert z.read(f"tfkit/_recipes/{recipe.name}") == recipe.read_bytes(), recipe.name
    packaged = {n for n in names if n.startswith("tfkit/_recipes/")}
    assert packaged == {f"tfkit/_recipes/{r.name}" for r in SHIPPED}
    assert not [n for n in names if n.split("/")[0] in ("converters", "tests", "build")]


def test_installed_tfkit_lists_and_runs_the_shipped_recipes(installed, tmp_path):
    # cwd is a bare folder: no converters/ here or beside the installed package to fall back on
    where = Path(in_venv(installed, "python", "-c", "import tfkit; print(tfkit.__file__)", cwd=tmp_path).stdout.strip())
    assert where.is_relative_to(installed) and "site-packages" in where.parts, where
    folder = Path(in_venv(installed, "tfkit", "recipes", "--path", cwd=tmp_path).stdout.strip())
    assert folder == where.parent / "_recipes"

    table = in_venv(installed, "tfkit", "recipes", cwd=tmp_path).stdout
    # the same table a checkout prints, links aside (they name the folder the recipes lie in)
    assert table.replace("](_recipes/", "](converters/") == recipe_table(ROOT / "converters")

    name = "tsm_mobilenet_v2_cpu-int8"
    plan = in_venv(installed, "tfkit", "run", name, "--dry-run", "--out", tmp_path / "o", cwd=tmp_path).stdout
    assert plan.startswith(f"recipe {name} (model tsm_mobilenet_v2, target cpu-int8)"), plan
    assert f"{tmp_path / 'o' / '04-convert'}  convert <- train, data  precision=int8" in plan, plan
    assert not (tmp_path / "o").exists()
