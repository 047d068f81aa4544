"""The delegate provider protocol, the coverage result every provider returns, and the registry
(built-ins plus third-party providers from the `tfkit.delegates` entry-point group).

A provider answers four questions for a .tflite: which ops the delegate would run and why not
the others (`coverage`), how it is loaded on a host that has it (`load_hint`), which
`benchmark_model` flags select it, and what Android calls it.

Example:
    >>> cov = get_delegate("gpu").coverage(TfliteGraph.from_flatbuffer(fb))  # doctest: +SKIP
    >>> cov.summary()  # doctest: +SKIP
    'partial: 3/57 ops on CPU'

A plug-in package declares, in its pyproject.toml:
    [project.entry-points."tfkit.delegates"]
    hexagon = "my_pkg.hexagon:HexagonDelegate"   # a DelegateProvider subclass
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from tfkit.delegates.graph import CONTROL_FLOW, OpInfo, TfliteGraph, partition
from tfkit.errors import UnknownNameError, UsageError
from tfkit.registry import Registry

ENTRY_POINT_GROUP = "tfkit.delegates"


@dataclass(frozen=True)
class OpDecision:
    """One op of the graph: does the delegate take it, and if not, why."""

    index: int
    op: str
    delegated: bool
    reason: str = ""  # empty when delegated; general, so that ops of a kind group into one row
    detail: str = ""  # the tensor or value that tripped the rule


@dataclass(frozen=True)
class OpCoverage:
    """Ops of one kind that share a decision (the `ops` rows of `tfkit check --json`)."""

    op: str
    count: int
    delegated: bool
    reason: str
    example: str = ""  # the first offending tensor or value among them


@dataclass(frozen=True)
class Coverage:
    delegate: str
    verdict: str  # "full" | "partial" | "none"
    ops_total: int
    ops_delegated: int
    ops: tuple[OpCoverage, ...]
    partitions: int  # runs of consecutive delegated ops: each hand-over costs a copy per inference
    source: str  # what decided: "static rules", "measured: ai-edge-litert 2.x", "edgetpu_compiler 16.0"
    notes: tuple[str, ...] = ()
    fallback_indices: tuple[int, ...] = field(default=(), repr=False)
    measured: bool = False  # True when the real delegate (or its compiler) decided, not tfkit's rule tables
    backend: str = ""  # which implementation the verdict is for ("ML Drift WebGPU/Vulkan", "OpenCL")
    disagreements: tuple[str, ...] = ()  # measured verdicts only: where the static rules said otherwise

    def summary(self) -> str:
        on_cpu = self.ops_total - self.ops_delegated
        if self.verdict == "full":
            return f"fully delegated ({self.ops_total}/{self.ops_total} ops on {self.delegate})"
        if self.verdict == "none":
            reasons = sorted({r.reason for r in self.ops if not r.delegated})
            return f"not delegable: {'; '.join(reasons[:3])}" + (" ..." if len(reasons) > 3 else "")
        return f"partial: {on_cpu}/{self.ops_total} ops on CPU"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ops"] = [asdict(r) for r in self.ops]
        d["summary"] = self.summary()
        d["notes"] = list(self.notes)
        d["fallback_indices"] = list(self.fallback_indices)
        d["disagreements"] = list(self.disagreements)
        return d


def summarize(delegate: str, decisions: Sequence[OpDecision], *, source: str, notes=(), measured: bool = False,
              backend: str = "", graph: TfliteGraph | None = None) -> Coverage:
    """Group per-op decisions into the coverage table and a verdict. With `graph`, partitions are
    counted as TFLite forms them (by data dependencies), else as runs in file order."""
    rows: dict[tuple[str, bool, str], list] = {}
    for d in decisions:
        row = rows.setdefault((d.op, d.delegated, d.reason), [0, d.detail])
        row[0] += 1
    ops = tuple(OpCoverage(op, n, delegated, reason, example)
                for (op, delegated, reason), (n, example) in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])))
    total, done = len(decisions), sum(d.delegated for d in decisions)
    partitions, inside = 0, False
    for d in decisions:
        partitions += d.delegated and not inside
        inside = d.delegated
    if graph is not None:
        partitions = sum(p.delegated for p in partition(graph, {d.index for d in decisions if d.delegated}))
    verdict = "full" if total and done == total else "none" if done == 0 else "partial"
    return Coverage(delegate, verdict, total, done, ops, partitions, source, tuple(notes),
                    tuple(d.index for d in decisions if not d.delegated), measured, backend)


@dataclass(frozen=True)
class LoadHint:
    available: bool  # can this host load it now?
    how: str  # the call or setting that loads it, or how to get it


class DelegateProvider(ABC):
    """Subclasses set the class attributes and implement `op_reason`; providers whose delegate
    takes only part of the graph (one partition, a prefix) override `decide`."""

    name: ClassVar[str]
    title: ClassVar[str]
    benchmark_flags: ClassVar[tuple[str, ...]]  # for TFLite's benchmark_model
    # The external delegate library a device's runner loads for it (runner.py --delegate NAME), None
    # for delegates built into the interpreter; tfkit/bench/board/board_delegates.py holds the same names.
    runner_library: ClassVar[str | None] = None
    android_accelerator: ClassVar[str]  # how Android code selects it
    deprecated: ClassVar[str | None] = None  # a warning shown with every result
    # Custom ops (by custom code) the delegate has a kernel for; every other custom op stays on the
    # CPU, and only if the runtime that loads the model has it registered.
    custom_ops: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def op_reason(self, op: OpInfo, graph: TfliteGraph) -> Reason | None:
        """None if the delegate takes `op`, else why not (op unsupported, op version, dtype,
        dynamic shape, rank, not fully int8...)."""

    def decide(self, graph: TfliteGraph) -> list[OpDecision]:
        return [decision(op, common_reason(op, self.custom_ops, self.title) or self.op_reason(op, graph))
                for op in graph.ops]

    def coverage(self, graph: TfliteGraph, flatbuffer: bytes | None = None) -> Coverage:
        """Per-op coverage; `flatbuffer` lets providers that can measure or run a tool do so."""
        notes = [self.deprecated] if self.deprecated else []
        if graph.subgraphs > 1:
            notes.append(f"{graph.subgraphs - 1} more subgraph(s) (control flow) are not analysed; "
                         "delegates run only the main one")
        return summarize(self.name, self.decide(graph), source="static rules", notes=notes, graph=graph)

    @abstractmethod
    def load_hint(self) -> LoadHint:
        """How this delegate is loaded on a host that has it."""

    def info(self) -> dict:
        hint = self.load_hint()
        return {"delegate": self.name, "title": self.title, "benchmark_flags": list(self.benchmark_flags),
                "android_accelerator": self.android_accelerator, "deprecated": self.deprecated,
                "host_available": hint.available, "load": hint.how}


Reason = str | tuple[str, str]  # the reason, or (reason, the tensor/value that tripped it)


def decision(op: OpInfo, reason: Reason | None) -> OpDecision:
    if reason is None:
        return OpDecision(op.index, op.name, True)
    text, detail = (reason, "") if isinstance(reason, str) else reason
    return OpDecision(op.index, op.name, False, text, detail)


def common_reason(op: OpInfo, custom_ops: frozenset[str] = frozenset(), who: str = "this delegate") -> str | None:
    """Custom ops the delegate has no kernel for, and control flow (no delegate here runs it)."""
    if op.custom:
        code = op.name.split(":", 1)[1]
        if code in custom_ops:
            return None
        known = ", ".join(sorted(custom_ops)) or "none"
        return f"custom op {code!r}: {who} runs only these custom ops: {known}"
    if op.name in CONTROL_FLOW:
        return f"{op.name}: control flow runs on the CPU interpreter"
    return None


def keep_largest_partitions(graph: TfliteGraph, decisions: Sequence[OpDecision], max_partitions: int, why: str,
                            *, skip: frozenset[int] = frozenset()) -> list[OpDecision]:
    """Delegates hand over only their `max_partitions` largest partitions (by op count; <= 0: no
    limit), as TFLite's GraphPartitionHelper::GetFirstNLargestPartitions picks them; ops of the
    other delegable partitions stay on the CPU with `why`. `skip`: ops the caller decides itself."""
    parts = [p for p in partition(graph, {d.index for d in decisions if d.delegated}, skip=skip) if p.delegated]
    if max_partitions <= 0 or len(parts) <= max_partitions:
        return list(decisions)
    kept = {i for p in sorted(parts, key=lambda p: -len(p.ops))[:max_partitions] for i in p.ops}
    return [OpDecision(d.index, d.op, False, why, f"op #{d.index}") if d.delegated and d.index not in kept
            and d.index not in skip else d for d in decisions]


def dynamic_tensor(op: OpInfo):
    return next((t for t in op.runtime_tensors if t.dynamic), None)


def runtime_dtypes(op: OpInfo) -> set[str]:
    return {t.dtype for t in op.runtime_tensors}


DELEGATES: Registry[type[DelegateProvider]] = Registry("delegate")


def _load_plugins() -> None:
    """Register providers that installed packages declare under the `tfkit.delegates` entry-point group."""
    DELEGATES.load_plugins(ENTRY_POINT_GROUP, DelegateProvider)


def delegate_names() -> list[str]:
    from tfkit.delegates import builtin  # noqa: F401  (registers the four built-ins)

    _load_plugins()
    return DELEGATES.names()


def get_delegate(name: str) -> DelegateProvider:
    names = delegate_names()
    if name not in names:
        raise UnknownNameError("delegate", name, names)
    return DELEGATES.get(name)()


def check_names(names: Sequence[str]) -> list[str]:
    """Expand "all" and validate delegate names."""
    known = delegate_names()
    out = known if "all" in names else list(dict.fromkeys(names))
    for n in out:
        if n not in known:
            raise UnknownNameError("delegate", n, [*known, "all"])
    if not out:
        raise UsageError("name at least one delegate")
    return out
