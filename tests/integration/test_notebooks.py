"""Every notebook runs top to bottom (code cells executed in order in one namespace, no Jupyter
needed), so the walkthroughs cannot rot."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFKIT_NOTEBOOK_OUT", str(tmp_path))
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    namespace = {"__name__": "__notebook__"}
    for i, cell in enumerate(cells):
        code = compile("".join(cell["source"]), f"{path.name}[cell {i}]", "exec")
        exec(code, namespace)  # noqa: S102 - our own notebook
    assert "float32" in capsys.readouterr().out
