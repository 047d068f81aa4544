"""`tfkit demo`: the whole job on the built-in default, one command."""
from __future__ import annotations

import click

from tfkit.cli.common import force_option, out_option, quiet_option
from tfkit.cli.options import config_from, config_options
from tfkit.models.spec import VideoModelSpec
from tfkit.pipeline import DEMO_MODEL
from tfkit.steps.bench import BenchStepConfig
from tfkit.steps.data import DataConfig
from tfkit.train import TrainConfig

# Model options are prefixed (--model-alpha ...) so they never clash with data options (--frames).
model_options = config_options(VideoModelSpec, exclude=("num_classes", "frames", "size"), prefix="model-",
                               rename={"family": ""}, defaults=DEMO_MODEL)


@click.command()
@out_option
@click.option("--precision", "precisions", multiple=True, default=("float32", "int8"), show_default=True,
              help="Precision to convert to (repeatable; tfkit list precisions).")
@config_options(DataConfig, exclude=("source",))
@model_options
@config_options(TrainConfig, exclude=("normalization", "seed"))
@config_options(BenchStepConfig, exclude=("device",), rename={"runs": "bench_runs", "warmup": "bench_warmup"})
@quiet_option
@force_option
def demo(out, precisions, quiet, force, **kw):
    """Generate the motion video set, train TSM-MobileNetV2, convert, benchmark and report into OUT."""
    from tfkit.cli.common import context
    from tfkit.convert.variants import VARIANTS
    from tfkit.models import MODELS
    from tfkit.pipeline import DemoConfig
    from tfkit.pipeline import demo as run_demo

    model = config_from(VideoModelSpec, kw, prefix="model-", num_classes=DEMO_MODEL.num_classes,
                        frames=DEMO_MODEL.frames, size=DEMO_MODEL.size)
    MODELS.get(model.family)
    for p in precisions:
        VARIANTS.get(p)
    data_cfg = config_from(DataConfig, kw)
    train_cfg = config_from(TrainConfig, kw, seed=data_cfg.seed)
    bench_cfg = config_from(BenchStepConfig, kw)
    result = run_demo(out, DemoConfig(data=data_cfg, model=model, train=train_cfg,
                                      precisions=tuple(precisions), bench=bench_cfg),
                      context(quiet), force=force)
    click.echo((result.out / "report.md").read_text())
    click.echo(f"report: {result.out / 'report.html'}")
