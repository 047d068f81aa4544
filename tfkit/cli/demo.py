"""`tfkit demo`: the whole job on the built-in default, one command."""
from __future__ import annotations

import click

from tfkit.cli.common import force_option, out_option, quiet_option
from tfkit.cli.options import config_from, config_options
from tfkit.steps.bench import BenchStepConfig
from tfkit.steps.data import DataConfig
from tfkit.train import TrainConfig


@click.command()
@out_option
@click.option("--model", default="tsm_mobilenet_v2", show_default=True, help="Zoo model (tfkit list models).")
@click.option("--alpha", default=0.35, show_default=True, help="Width multiplier.")
@click.option("--depth", default=1.0, show_default=True, help="Depth multiplier.")
@click.option("--precision", "precisions", multiple=True, default=("float32", "int8"), show_default=True,
              help="Precision to convert to (repeatable; tfkit list precisions).")
@config_options(DataConfig, exclude=("source",))
@config_options(TrainConfig, exclude=("normalization", "seed"))
@config_options(BenchStepConfig, exclude=("device",), rename={"runs": "bench_runs", "warmup": "bench_warmup"})
@quiet_option
@force_option
def demo(out, model, alpha, depth, precisions, quiet, force, **kw):
    """Generate the motion video set, train TSM-MobileNetV2, convert, benchmark and report into OUT."""
    from tfkit.cli.common import context
    from tfkit.convert.variants import VARIANTS
    from tfkit.models import MODELS
    from tfkit.pipeline import DemoConfig, demo as run_demo

    MODELS.get(model)
    for p in precisions:
        VARIANTS.get(p)
    data_cfg = config_from(DataConfig, kw)
    train_cfg = config_from(TrainConfig, kw, seed=data_cfg.seed)
    bench_cfg = config_from(BenchStepConfig, kw)
    result = run_demo(out, DemoConfig(data=data_cfg, model=model, alpha=alpha, depth=depth, train=train_cfg,
                                      precisions=tuple(precisions), bench=bench_cfg), context(quiet), force=force)
    click.echo((result.out / "report.md").read_text())
    click.echo(f"report: {result.out / 'report.html'}")
