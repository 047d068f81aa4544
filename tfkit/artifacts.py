"""Artifacts: a folder of files plus `manifest.json`, which carries the artifact's whole history
(every step's config, input/output sha256, tool versions and metrics). Folders appear atomically.

Example:
    >>> art = Artifact.load("out/03-train")  # doctest: +SKIP
    >>> art.file("model"), art.manifest.history[-1].metrics
"""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside `final`; on success it replaces `final` in one rename, on
    failure it is kept as `<final>.failed` for inspection and `final` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700; artifacts are ordinary folders
    try:
        yield stage
    except BaseException:
        failed = final.with_name(final.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(stage, failed)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(final.with_name(final.name + ".failed"), ignore_errors=True)
