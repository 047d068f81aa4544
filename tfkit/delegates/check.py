"""`check`: per-op delegate coverage of any .tflite, read in a child process.

A .tflite from elsewhere is untrusted input: a hostile or corrupt file can make the flatbuffer
reader or LiteRT allocate without bound or crash. So `check_file` runs the analysis in a child
Python process with a timeout and turns every failure into one clear `ModelFileError`.

Example:
    >>> [c.summary() for c in check_file("model.tflite", ["gpu", "edgetpu"])]  # doctest: +SKIP
    ['fully delegated (57/57 ops on gpu)', 'not delegable: not fully int8: ...']
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tfkit.delegates.base import Coverage, OpCoverage, check_names, get_delegate
from tfkit.delegates.graph import TfliteGraph
from tfkit.errors import InputPathError

CHILD_TIMEOUT_S = 300.0


def check_bytes(flatbuffer: bytes, delegates: Sequence[str], *, what: str = "model",
                android_api: int = 30) -> list[Coverage]:
    """In this process: coverage of `flatbuffer` for each delegate (trusted input)."""
    graph = TfliteGraph.from_flatbuffer(flatbuffer, what=what)
    out = []
    for name in check_names(delegates):
        provider = get_delegate(name)
        if name == "nnapi":
            provider.android_api = android_api
        out.append(provider.coverage(graph, flatbuffer))
    return out


def check_file(path: str | os.PathLike, delegates: Sequence[str], *, android_api: int = 30,
               timeout: float = CHILD_TIMEOUT_S) -> list[Coverage]:
    """Coverage of the .tflite at `path` for each delegate, computed in a child process."""
    from tfkit.isolate import check_size, run_child

    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"no .tflite file at {path}")
    check_size(path)
    names = check_names(delegates)
    payload = run_child("tfkit.delegates.check", [str(path), ",".join(names), str(android_api)], what=str(path),
                        timeout_s=timeout)
    return [_coverage_from_dict(d) for d in payload["coverage"]]


def _coverage_from_dict(d: dict) -> Coverage:
    return Coverage(d["delegate"], d["verdict"], d["ops_total"], d["ops_delegated"],
                    tuple(OpCoverage(**r) for r in d["ops"]), d["partitions"], d["source"], tuple(d["notes"]),
                    tuple(d["fallback_indices"]))


def _child(argv: list[str]) -> int:
    """`python -m tfkit.delegates.check PATH NAMES API`: one JSON line on stdout."""
    import warnings

    from ai_edge_litert import schema_py_generated  # noqa: F401  (imported before the memory cap)
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    from tfkit.delegates import builtin  # noqa: F401
    from tfkit.isolate import child_main

    path, names, api = argv[0], argv[1].split(","), int(argv[2])
    warnings.simplefilter("ignore")
    return child_main(path, lambda data: {"coverage": [c.to_dict() for c in
                                                       check_bytes(data, names, what=path, android_api=api)]})


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
