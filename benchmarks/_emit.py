"""Shared by the benchmark scripts: print the result and write it as JSON, with the host that
measured it (latencies from two machines differ more than any goal's margin: int8 vs float32 on
x86 depends on the CPU's vector extensions)."""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8",
                 "asimd", "asimddp", "i8mm", "sve")  # what XNNPACK picks its int8/float kernels by


def _cpu() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    return model, [f for f in _VECTOR_FLAGS if f in flags]


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def host() -> dict:
    cpu, flags = _cpu()
    return {"cpu": cpu, "cpu_flags": flags, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "loadavg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            **{p: _version(p) for p in ("tensorflow", "ai-edge-litert", "numpy")}}


def provenance() -> dict:
    """When and how a result was made, for docs/results.md (benchmarks/results_page.py)."""
    return {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": shlex.join(["python", *sys.argv])}


def emit(result: dict, json_path: Path | None) -> None:
    result = {**provenance(), **result, "host": result.get("host") or host()}
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
