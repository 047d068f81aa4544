"""`check`: per-op delegate coverage of any .tflite, read in a child process.

A .tflite from elsewhere is untrusted input: a hostile or corrupt file can make the flatbuffer
reader or LiteRT allocate without bound or crash. So `check_file` runs the analysis in a child
Python process with a timeout and turns every failure into one clear `ModelFileError`.

Example:
    >>> [c.summary() for c in check_file("model.tflite", ["gpu", "edgetpu"])]  # doctest: +SKIP
    ['fully delegated (57/57 ops on gpu)', 'not delegable: not fully int8: ...']
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.delegates.base import Coverage, DelegateProvider, OpCoverage, check_names, get_delegate
from tfkit.delegates.graph import TfliteGraph
from tfkit.errors import InputPathError

CHILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class CheckOptions:
    """How providers decide. `measure=False`: rule tables only, even where the real delegate loads."""

    android_api: int = 30  # NNAPI: the Android API level targeted
    nnapi_max_partitions: int = 3  # NNAPI: max_number_delegated_partitions (<= 0: no limit)
    measure: bool = True

    def apply(self, provider: DelegateProvider) -> DelegateProvider:
        for attr, value in (("android_api", self.android_api), ("max_partitions", self.nnapi_max_partitions)):
            if provider.name == "nnapi" and hasattr(provider, attr):
                setattr(provider, attr, value)
        if hasattr(provider, "measure_real") and not self.measure:
            provider.measure_real = False
        return provider


def check_bytes(flatbuffer: bytes, delegates: Sequence[str], *, what: str = "model", android_api: int = 30,
                options: CheckOptions | None = None) -> list[Coverage]:
    """In this process: coverage of `flatbuffer` for each delegate (trusted input)."""
    options = options or CheckOptions(android_api=android_api)
    graph = TfliteGraph.from_flatbuffer(flatbuffer, what=what)
    return [options.apply(get_delegate(name)).coverage(graph, flatbuffer) for name in check_names(delegates)]


def check_file(path: str | os.PathLike, delegates: Sequence[str], *, android_api: int = 30,
               timeout: float = CHILD_TIMEOUT_S, options: CheckOptions | None = None) -> list[Coverage]:
    """Coverage of the .tflite at `path` for each delegate, computed in a child process (which
    starts its own child for the GPU accelerator, with the Vulkan environment set there only)."""
    from tfkit.isolate import check_size, run_child

    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"no .tflite file at {path}")
    check_size(path)
    names = check_names(delegates)
    options = options or CheckOptions(android_api=android_api)
    payload = run_child("tfkit.delegates.check", [str(path), ",".join(names), json.dumps(asdict(options))],
                        what=str(path), timeout_s=timeout)
    return [_coverage_from_dict(d) for d in payload["coverage"]]


def _coverage_from_dict(d: dict) -> Coverage:
    return Coverage(d["delegate"], d["verdict"], d["ops_total"], d["ops_delegated"],
                    tuple(OpCoverage(**r) for r in d["ops"]), d["partitions"], d["source"], tuple(d["notes"]),
                    tuple(d["fallback_indices"]), d.get("measured", False), d.get("backend", ""),
                    tuple(d.get("disagreements", ())))


def _child(argv: list[str]) -> int:
    """`python -m tfkit.delegates.check PATH NAMES API`: one JSON line on stdout."""
    import warnings

    from ai_edge_litert import schema_py_generated  # noqa: F401  (imported before the memory cap)
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    from tfkit.delegates import builtin  # noqa: F401
    from tfkit.isolate import child_main

    path, names, options = argv[0], argv[1].split(","), CheckOptions(**json.loads(argv[2]))
    warnings.simplefilter("ignore")
    return child_main(path, lambda data: {"coverage": [c.to_dict() for c in
                                                       check_bytes(data, names, what=path, options=options)]})


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
