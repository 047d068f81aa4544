"""Progress bars for long work (rich), quiet when disabled or when output is not a terminal.

Example:
    >>> with progress_bar("decoding", total=3, enabled=False) as advance:
    ...     for _ in range(3): advance()
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yields `advance(n=1, **fields)`; `fields` may update the description suffix (e.g. loss=0.3)."""
    if not enabled:
        yield lambda n=1, **fields: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=None if sys.stderr.isatty() else False)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, **fields) -> None:
            info = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            bar.update(task, advance=n, **({"info": info} if fields else {}))
            if not console.is_terminal and fields:
                # Non-terminal output (CI, pipes): one line per update that carries numbers.
                print(f"{description}: {info}", file=sys.stderr, flush=True)

        yield advance
