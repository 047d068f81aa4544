"""The files copied to a device (runner.py and its board_*.py siblings) must run on old boards:
Python 3.8 grammar, only stdlib + numpy + an interpreter module + each other, and never tfkit.
tfkit.bench / tfkit.report must not pull TensorFlow or matplotlib at import."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tfkit.bench.devices import runner_script
from tfkit.bench.devices.base import runner_files

ALLOWED_THIRD_PARTY = {"numpy", "ai_edge_litert", "tflite_runtime"}
# Added to the stdlib after 3.8, so absent on old boards even though this host has them.
STDLIB_NEWER_THAN_38 = {"zoneinfo", "graphlib", "tomllib", "wsgiref.types"}
BOARD_FILES = runner_files()
SIBLINGS = {p.stem for p in BOARD_FILES if p != runner_script()}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "board files are copied into a plain folder: no relative imports"
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.add("<dynamic>")  # only load_runtime may do this; checked below
    return names


def test_the_board_file_set():
    assert BOARD_FILES[0] == runner_script()
    assert {"board_sysinfo", "board_stream", "board_delegates"} <= SIBLINGS


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.name)
def test_board_file_parses_as_python_38(path):
    source = path.read_text()
    ast.parse(source, feature_version=(3, 8))
    assert "from __future__ import annotations" not in source  # annotations would be evaluated on 3.8 otherwise
    for newer in ("removeprefix", "removesuffix", "BooleanOptionalAction", "functools.cache(", " | None",
                  "math.dist(", "str.isascii"):
        assert newer not in source, f"{newer} needs Python > 3.8"


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.name)
def test_board_file_imports_only_stdlib_numpy_interpreters_and_siblings(path):
    tree = ast.parse(path.read_text())
    modules = imported_modules(tree)
    outside = {
        m for m in modules - {"<dynamic>"}
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ALLOWED_THIRD_PARTY
        and m not in SIBLINGS
    }
    assert not outside, f"{path.name} imports {outside}"
    assert not {m for m in modules if m.split(".")[0] == "tfkit"}
    assert not modules & STDLIB_NEWER_THAN_38
    dynamic = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "__import__"]
    if path != runner_script():
        assert not dynamic
        return
    assert len(dynamic) == 1  # load_runtime's import of the interpreter modules named in RUNTIME_MODULES
    modules_table = next(
        n.value for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "RUNTIME_MODULES"
    )
    assert {elt.elts[1].value for elt in modules_table.elts} == {"ai_edge_litert", "tflite_runtime"}


@pytest.mark.parametrize("module", ["tfkit.bench", "tfkit.bench.devices", "tfkit.report"])
def test_import_pulls_no_tensorflow_or_matplotlib(module):
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'tf_keras', 'keras', 'matplotlib', 'ai_edge_litert'})\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
