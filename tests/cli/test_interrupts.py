"""Interrupted runs: SIGINT/SIGTERM stop the running step with exit 130/143, leave no staging folder,
and keep the step's log, config and partial results in `<out>.failed/`; a killed run's staging
folder is removed by the next run, a live run's is not. Real subprocesses, a tiny sleeping step."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfkit.artifacts import remove_stale_stages, staged_dir

# A CLI command `slow` over a step that logs, records a measurement, writes a file, then sleeps
# (or finishes at once with --fast). Registered in the child only: the real CLI group runs it.
CHILD = '''
import sys, time
from pathlib import Path
import click
from tfkit.cli import main
from tfkit.cli.common import context
from tfkit.steps.base import Step, StepOutput, run_step
from tfkit.types import ArtifactKind

class SlowStep(Step):
    name = "slow"
    def __init__(self, fast):
        super().__init__({"fast": fast})
    def run(self, inputs, workdir, ctx):
        ctx.log("[slow] epoch 1 done")
        ctx.record({"epoch": 1, "val_accuracy": 0.5})
        (workdir / "partial.txt").write_text("half")
        Path(sys.argv[-1]).write_text("running")
        if not self.config["fast"]:
            time.sleep(60)
        (workdir / "out.txt").write_text("done")
        return StepOutput(kind=ArtifactKind.REPORT, files={"report": "out.txt"})

@click.command()
@click.argument("out")
@click.argument("marker")
@click.option("--fast", is_flag=True)
def slow(out, marker, fast):
    click.echo(str(run_step(SlowStep(fast), [], Path(out), context(False)).path))

main.COMMANDS["slow"] = ("__main__:slow", "a test step")
main.cli(["slow", *sys.argv[1:]])
'''


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path, Path]:
    script, out, marker = tmp_path / "child.py", tmp_path / "out" / "01-slow", tmp_path / "running"
    script.write_text(CHILD)
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(script), *args, str(out), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, out, marker


def _stages(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.staging-*"))


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_step_and_keeps_its_log(tmp_path, sig, code):
    proc, out, marker = _start(tmp_path)
    assert marker.exists(), proc.communicate(timeout=10)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and signal.Signals(sig).name in stderr
    assert _stages(out) == [] and not out.exists()
    failed = out.with_name(out.name + ".failed")
    assert str(failed) in stderr  # the message says where to look
    log = (failed / "step.log").read_text()
    assert "[slow] epoch 1 done" in log and f"interrupted by {signal.Signals(sig).name}" in log
    assert json.loads((failed / "metrics.json").read_text()) == {"epoch": 1, "val_accuracy": 0.5}
    assert json.loads((failed / "config.json").read_text())["config"] == {"fast": False}
    assert (failed / "partial.txt").read_text() == "half"


def test_killed_run_staging_is_removed_by_the_next_run(tmp_path):
    proc, out, marker = _start(tmp_path)
    assert marker.exists()
    proc.kill()  # SIGKILL: nothing runs on the way out, the staging folder stays
    proc.communicate(timeout=30)
    assert len(_stages(out)) == 1
    proc, out, _ = _start(tmp_path, "--fast")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert _stages(out) == [] and (out / "out.txt").read_text() == "done"
    assert not out.with_name(out.name + ".failed").exists()


def test_a_live_runs_staging_is_kept(tmp_path):
    final = tmp_path / "02-train"
    with staged_dir(final) as mine:  # this process is alive: its stage is not stale
        assert remove_stale_stages(final) == []
        assert mine.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".{final.name}.staging-{dead.pid}.1-abc"
    stale.mkdir()
    legacy = tmp_path / f".{final.name}.staging-k2j3h4"  # no pid in the name: cannot tell, kept
    legacy.mkdir()
    assert remove_stale_stages(final) == [stale]
    assert legacy.exists() and not stale.exists() and os.path.isdir(final)
