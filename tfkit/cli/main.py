"""`tfkit` command line. Subcommands are imported only when run, so `tfkit --help` is instant and
never imports TensorFlow.

Example:
    $ tfkit demo --out out/
"""
from __future__ import annotations

import importlib
import re
import sys
import threading

import click

# name -> (module:attribute, one-line help shown by --help without importing the module)
COMMANDS = {
    "demo": ("tfkit.cli.demo:demo", "Run the whole job on the built-in data: data, build, train, convert, bench, report."),
    "run": ("tfkit.cli.run:run", "Run a YAML recipe (converters/NAME.yaml): checked first, unchanged steps reused."),
    "recipes": ("tfkit.cli.run:recipes", "List the shipped recipes (model x target) as a Markdown table."),
    "data": ("tfkit.cli.steps:data", "Decode videos (built-in set or root/<class>/<video>) into clip sets."),
    "build": ("tfkit.cli.steps:build", "Build a zoo model (untrained) as a Keras artifact."),
    "import": ("tfkit.cli.steps:import_model", "Bring your own tf_keras model (.keras, .h5, SavedModel), checked for code."),
    "train": ("tfkit.cli.steps:train", "Train a Keras model artifact on a dataset artifact."),
    "prune": ("tfkit.cli.steps:prune", "Magnitude-prune a trained Keras model (TFMOT) with fine-tuning."),
    "structured": ("tfkit.cli.steps:structured",
                   "Remove residual blocks (timed on --device, this host by default) and channels, then distill: a faster model."),
    "cluster": ("tfkit.cli.steps:cluster", "Cluster a trained Keras model's weights (TFMOT) with fine-tuning."),
    "lowrank": ("tfkit.cli.steps:lowrank", "Factorize Dense and 1x1 convolutions by truncated SVD, then fine-tune."),
    "distill": ("tfkit.cli.steps:distill", "Distill a student Keras model from a teacher (logits + labels)."),
    "convert": ("tfkit.cli.steps:convert", "Convert a Keras model to TFLite in one precision, with a parity check."),
    "bench": ("tfkit.cli.steps:bench", "Benchmark .tflite artifacts on a device (latency, memory, accuracy)."),
    "check": ("tfkit.cli.check:check", "Per-op delegate coverage (xnnpack, gpu, nnapi, edgetpu) of any .tflite."),
    "report": ("tfkit.cli.steps:report", "Write report.json/.md/.html and a plot from a benchmark artifact."),
    "inspect": ("tfkit.cli.inspect:inspect_cmd", "Show a .tflite's tfkit metadata, inputs/outputs, op versions, runtime."),
    "flash": ("tfkit.cli.flash:flash", "Copy a converted model to ~/tfkit/models/<name>/ on a device, sha256-checked; --list."),
    "devices": ("tfkit.cli.devices:devices", "List this host and the devices of devices.yaml, with each one's fingerprint."),
    "list": ("tfkit.cli.listing:list_cmd", "List registered models, precisions, steps, devices and delegates."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def invoke(self, ctx):
        from tfkit._compat import tflogs
        from tfkit.errors import TfkitError

        verbose = bool(ctx.params.get("verbose"))
        saved_env = tflogs.quiet_environment(verbose)  # before any command loads TensorFlow; children inherit it
        log_filter = None if verbose or not _real_stderr() else tflogs.StderrFilter()
        handlers = _interrupts_raise()
        try:
            if log_filter is not None:
                log_filter.start()
            return super().invoke(ctx)
        except TfkitError as e:
            failure, code = f"error: {_message(e)}", e.exit_code
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the step has already moved its staging aside
            failure, code = f"stopped: {_message(e) or 'interrupted by SIGINT'}", getattr(e, "exit_code", 130)
        finally:
            if log_filter is not None:
                log_filter.stop()
            _restore(handlers)
            tflogs.restore(saved_env)
        # One actionable line, no traceback; usage errors exit 2 like click's own, signals 128 + N.
        click.echo(failure, err=True)
        sys.exit(code)


def _message(e: BaseException) -> str:
    """The exception's words plus its notes (e.g. where the failed step's log is). A message that
    quotes a tool's own "error: ..." line keeps it, but never starts with a second "error:"."""
    text = "\n".join([str(e), *getattr(e, "__notes__", ())]).strip()
    return re.sub(r"^(error:\s*)+", "", text, flags=re.IGNORECASE)


def _real_stderr() -> bool:
    """Whether sys.stderr is fd 2 itself (not click's CliRunner capture), so filtering fd 2 is safe."""
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _interrupts_raise() -> dict:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread, so a running step unwinds (its
    staging folder goes to .failed, children are killed) instead of the process dying mid-write."""
    import signal

    from tfkit.errors import Interrupted

    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupted(signum, frame):
        raise Interrupted(signum)

    return {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(handlers: dict) -> None:
    import signal

    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfkit")
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's and LiteRT's own log lines (hidden by default: they read like failures).")
def cli(verbose: bool):
    """tfkit: video models from Keras to fast, small TensorFlow Lite artifacts.

    Every command writes an artifact folder with a manifest.json that records its whole history.
    """


if __name__ == "__main__":  # pragma: no cover
    cli()
