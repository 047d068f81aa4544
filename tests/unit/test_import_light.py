"""`import tfkit` and `tfkit --help` must not import TensorFlow (it costs ~7 s and 500 MB)."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("code", [
    "import tfkit",
    "import tfkit, tfkit.steps, tfkit.pipeline, tfkit.models, tfkit.data, tfkit.bench, tfkit.report, tfkit.cli.steps",
    "from tfkit.cli.main import cli; from click.testing import CliRunner; CliRunner().invoke(cli, ['--help'])",
    "from tfkit.cli.main import cli; from click.testing import CliRunner; CliRunner().invoke(cli, ['list'])",
])
def test_no_tensorflow_import(code):
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print('tensorflow' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
