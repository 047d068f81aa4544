"""Shared by the benchmark scripts: print the result and write it as JSON."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, json_path: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
