"""runner.py must run on old boards: Python 3.8 grammar, only stdlib + numpy + an interpreter module,
and never tfkit. tfkit.bench / tfkit.report must not pull TensorFlow or matplotlib at import."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tfkit.bench.devices import runner_script

ALLOWED_THIRD_PARTY = {"numpy", "ai_edge_litert", "tflite_runtime"}
# Added to the stdlib after 3.8, so absent on old boards even though this host has them.
STDLIB_NEWER_THAN_38 = {"zoneinfo", "graphlib", "tomllib", "wsgiref.types"}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "runner.py is copied alone: no relative imports"
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.add("<dynamic>")  # only load_runtime may do this; checked below
    return names


def test_runner_parses_as_python_38():
    source = runner_script().read_text()
    ast.parse(source, feature_version=(3, 8))
    assert "from __future__ import annotations" not in source  # annotations would be evaluated on 3.8 otherwise
    for newer in ("removeprefix", "removesuffix", "BooleanOptionalAction", "functools.cache(", " | None"):
        assert newer not in source, f"{newer} needs Python > 3.8"


def test_runner_imports_only_stdlib_numpy_and_interpreters():
    tree = ast.parse(runner_script().read_text())
    modules = imported_modules(tree)
    outside = {
        m for m in modules - {"<dynamic>"}
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ALLOWED_THIRD_PARTY
    }
    assert not outside, f"runner.py imports {outside}"
    assert not {m for m in modules if m.split(".")[0] == "tfkit"}
    assert not modules & STDLIB_NEWER_THAN_38
    dynamic = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "__import__"]
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
