"""Artifacts: a folder of files plus `manifest.json`, which carries the artifact's whole history
(every step's config, input/output sha256, tool versions and metrics). Folders appear atomically.

Example:
    >>> art = Artifact.load("out/03-train")  # doctest: +SKIP
    >>> art.file("model"), art.manifest.history[-1].metrics
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tfkit.atomic import write_bytes_atomic, write_text_atomic  # noqa: F401  (re-exported)
from tfkit.errors import InputPathError
from tfkit.types import ArtifactKind

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class FileDigest:
    path: str  # relative to the artifact folder (outputs) or as given (inputs)
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, path: Path, relative_to: Path | None = None) -> FileDigest:
        name = str(path.relative_to(relative_to)) if relative_to else str(path)
        return cls(name, sha256_file(path), path.stat().st_size)


@dataclass(frozen=True)
class StepRecord:
    step: str
    config: dict
    inputs: tuple[FileDigest, ...]
    outputs: tuple[FileDigest, ...]
    tool_versions: dict
    metrics: dict
    started_at: str
    duration_s: float

    @classmethod
    def from_dict(cls, d: dict) -> StepRecord:
        return cls(**{**d, "inputs": tuple(FileDigest(**x) for x in d["inputs"]),
                      "outputs": tuple(FileDigest(**x) for x in d["outputs"])})


@dataclass(frozen=True)
class Manifest:
    kind: ArtifactKind
    files: dict  # role -> file name inside the folder, e.g. {"model": "model.tflite"}
    spec: dict = field(default_factory=dict)  # what the artifact is (model spec, classes, precision)
    history: tuple[StepRecord, ...] = ()
    cache_key: str = ""  # hash of (step, config, inputs) that produced it; reruns compare it

    def to_json(self) -> str:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["schema_version"] = SCHEMA_VERSION
        return json.dumps(d, indent=2, sort_keys=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        d.pop("schema_version", None)
        return cls(kind=ArtifactKind(d["kind"]), files=d["files"], spec=d.get("spec", {}),
                   history=tuple(StepRecord.from_dict(r) for r in d.get("history", ())),
                   cache_key=d.get("cache_key", ""))


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: Manifest

    @property
    def kind(self) -> ArtifactKind:
        return self.manifest.kind

    def file(self, role: str) -> Path:
        try:
            return self.path / self.manifest.files[role]
        except KeyError:
            raise InputPathError(
                f"artifact {self.path} ({self.kind.value}) has no {role!r} file; it has "
                f"{sorted(self.manifest.files)}") from None

    @property
    def metrics(self) -> dict:
        return self.manifest.history[-1].metrics if self.manifest.history else {}

    @classmethod
    def load(cls, path: str | os.PathLike) -> Artifact:
        path = Path(path)
        mf = path / MANIFEST
        if not mf.is_file():
            raise InputPathError(f"{path} is not a tfkit artifact folder (no {MANIFEST})")
        try:
            manifest = Manifest.from_json(mf.read_text())
        except (ValueError, KeyError, TypeError) as e:
            raise InputPathError(f"{mf} is not a valid tfkit manifest ({e}); rerun the step that made it") from e
        return cls(path, manifest)


STAGING = ".staging-"


def _process_tag(pid: int) -> str:
    """`pid` plus its start time (Linux), so that a reused pid is not taken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        start = "x"
    return f"{pid}.{start}"


def _owner_gone(tag: str) -> bool:
    """Whether the process named by a `_process_tag` no longer runs (unknown tags are kept)."""
    pid, _, start = tag.partition(".")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return start not in ("", "x") and _process_tag(int(pid)) not in (tag, f"{pid}.x")


def remove_stale_stages(final: Path) -> list[Path]:
    """Remove the staging (and half-swapped `.old-`) folders beside `final` that a killed run left;
    those of a run still going (its process is alive) are kept. Returns what it removed."""
    final = Path(final)
    removed = []
    name = glob.escape(final.name)
    for pattern, tag_of in ((f".{name}{STAGING}*", lambda n: n.rsplit(STAGING, 1)[1].rsplit("-", 1)[0]),
                            (f".{name}.old-*", lambda n: n.rsplit(".old-", 1)[1])):
        for path in final.parent.glob(pattern):
            if path.is_dir() and _owner_gone(tag_of(path.name)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside `final`; on success it replaces `final` in one rename, on
    failure (an interrupt included) it is kept as `<final>.failed` for inspection and `final` is
    untouched. Staging folders of killed runs (named by their pid) are removed first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(final)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{STAGING}{_process_tag(os.getpid())}-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700; artifacts are ordinary folders
    try:
        yield stage
    except BaseException:
        failed = failed_dir(final)
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(stage, failed)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{_process_tag(os.getpid())}")
        os.replace(final, old)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(failed_dir(final), ignore_errors=True)


def failed_dir(final: Path) -> Path:
    """Where a failed or interrupted step's staging folder is kept: `<final>.failed`."""
    return Path(final).with_name(Path(final).name + ".failed")
