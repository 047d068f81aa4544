"""`tfkit list`: what the registries hold (no TensorFlow import)."""
from __future__ import annotations

import click

WHAT = ("models", "precisions", "steps", "devices", "delegates")


def _tables() -> dict[str, list[tuple[str, str]]]:
    from tfkit.bench.devices import DEVICES
    from tfkit.convert.variants import VARIANTS
    from tfkit.delegates import delegate_names, get_delegate
    from tfkit.models import MODELS
    from tfkit.steps import STEPS

    def doc(obj) -> str:
        return ((obj.__doc__ or "").strip().splitlines() or [""])[0]

    return {
        "models": [(n, doc(MODELS.get(n))) for n in MODELS.names()],
        "precisions": [(n, VARIANTS.get(n).description) for n in VARIANTS.names()],
        "steps": [(n, doc(STEPS.get(n))) for n in STEPS.names()],
        "devices": [(n, doc(DEVICES.get(n))) for n in DEVICES.names()],
        "delegates": [(n, get_delegate(n).title) for n in delegate_names()],
    }


@click.command("list")
@click.argument("what", required=False, type=click.Choice(WHAT))
def list_cmd(what):
    """List registered models, precisions, steps, devices and delegates (or just WHAT)."""
    tables = _tables()
    for name in [what] if what else WHAT:
        click.echo(f"{name}:")
        for item, description in tables[name]:
            click.echo(f"  {item:<20} {description}")
