"""`tfkit list`: what the registries hold (no TensorFlow import)."""
from __future__ import annotations

import click

WHAT = ("models", "precisions", "steps", "devices", "delegates")


def _tables() -> dict[str, list[tuple[str, str]]]:
    from tfkit.bench.devices import DEVICES
    from tfkit.bench.devices.kinds import device_kinds
    from tfkit.convert.variants import VARIANTS
    from tfkit.delegates import delegate_names, get_delegate
    from tfkit.models import MODELS
    from tfkit.steps import STEPS

    def doc(obj) -> str:  # the docstring's whole first paragraph: its first line may end mid-sentence
        return " ".join((obj.__doc__ or "").strip().split("\n\n")[0].split())

    return {
        "models": [(n, doc(MODELS.get(n))) for n in MODELS.names()],
        "precisions": [(n, VARIANTS.get(n).description) for n in VARIANTS.names()],
        "steps": [(n, doc(STEPS.get(n))) for n in STEPS.names()],
        "devices": [(n, doc(DEVICES.get(n))) for n in device_kinds()],  # plug-in kinds included
        "delegates": [(n, get_delegate(n).title) for n in delegate_names()],
    }


def lines(rows: list[tuple[str, str]], width: int | None) -> list[str]:
    """One entry per row with its whole description: wrapped under its column to `width` (a
    terminal's), or on one line when `width` is None (piped output stays greppable)."""
    import textwrap

    if width is None:
        return [f"  {item:<20} {description}" for item, description in rows]
    return [textwrap.fill(description, max(width, 40), initial_indent=f"  {item:<20} ", subsequent_indent=" " * 23,
                          break_on_hyphens=False) for item, description in rows]


@click.command("list")
@click.argument("what", required=False, type=click.Choice(WHAT))
def list_cmd(what):
    """List registered models, precisions, steps, devices and delegates (or just WHAT)."""
    import shutil
    import sys

    tables = _tables()
    width = shutil.get_terminal_size().columns - 1 if sys.stdout.isatty() else None
    for name in [what] if what else WHAT:
        click.echo(f"{name}:")
        for line in lines(tables[name], width):
            click.echo(line)
