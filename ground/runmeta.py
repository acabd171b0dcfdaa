"""meta.json as one typed record: every run's header, one status vocabulary, one way to finish.

Why: load runs (``bench run``), tuning runs (``bench run hpo``) and pipeline runs (local and
remote) each built meta.json as a dict and mutated it in their own way, with four status
vocabularies -- ``complete``/``interrupted``/``crashed``, ``error: <Type>: <message>``,
``ok``/``failed``/``interrupted``, and ``ok``/``failed``/``timeout``. Readers had to know
them all. Now every writer holds a :class:`RunMeta`, ends it with :meth:`RunMeta.finish`
(the only code that sets a final status and the finish time) and writes
:meth:`RunMeta.to_json`, whose keys are the ones meta.json always had. Readers get a
``RunMeta`` back from :meth:`RunMeta.from_json`, which maps every old status word through
:data:`LEGACY_STATUS` -- the one place that knows them -- so an old file reads as a new one.

Status (:class:`RunStatus`): a writer records ``running`` and then one final status --
``complete``, ``failed`` (the reason in ``error``) or ``interrupted`` (Ctrl-C, SIGTERM).
Readers may derive two more that are never written: ``abandoned`` (said ``running`` but its
writer is gone; ``bench.results.status``) and ``unknown`` (nothing can tell).

Kind-specific sections (a load run's ``sweep``, ``outcomes`` and ``client_ceiling``, a
tuning run's ``hpo``, a pipeline run's ``failed_stage`` ...) stay plain JSON in
:attr:`RunMeta.details`, written at the top level under their own keys as before.

Lives in ``ground`` because the pipeline report (``models/``) reads meta.json too, and
``models`` may not import ``bench``. Pure data and JSON; no servebench imports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ground.clock import utc_iso

__all__ = [
    "KIND_HPO",
    "KIND_PIPELINE",
    "KIND_SERVING",
    "LEGACY_STATUS",
    "MetaError",
    "RunMeta",
    "RunStatus",
    "parse_status",
    "read_run_meta",
    "utc_iso",
]

KIND_SERVING = "serving"  # bench run: summary.csv + requests.csv.gz
KIND_HPO = "hpo"  # bench run hpo: hpo_trials.csv, hpo_studies.csv
KIND_PIPELINE = "pipeline"  # bench run pipeline (local or --target): pipeline_stages.csv


class MetaError(ValueError):
    """A meta.json that cannot be read as run metadata (not JSON, not an object)."""


class RunStatus(StrEnum):
    """How a run stands. Writers record the first four; readers may derive the last two."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"  # ended early on an error; RunMeta.error says which
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    ABANDONED = "abandoned"  # derived (bench.results.status): recorded running, but its writer is gone
    UNKNOWN = "unknown"  # derived: no status recorded, or running with a writer nobody can check

    @property
    def final(self) -> bool:
        """A status a writer ends a run with (what :meth:`RunMeta.finish` accepts)."""
        return self in _FINAL


_FINAL = frozenset({RunStatus.COMPLETE, RunStatus.FAILED, RunStatus.INTERRUPTED})

# Status words older servebench versions wrote, and what they mean now. The only place
# that knows them; a word followed by ": detail" (tuning runs wrote "error: Type: msg")
# is looked up by the word, and the detail becomes RunMeta.error.
LEGACY_STATUS: Mapping[str, RunStatus] = {
    "ok": RunStatus.COMPLETE,  # pipeline runs, local and remote
    "crashed": RunStatus.FAILED,  # load runs ended by an unexpected exception
    "error": RunStatus.FAILED,  # tuning runs: "error: <Type>: <message>"
    "timeout": RunStatus.FAILED,  # remote pipelines: the bounded wait ran out (the run went on on the cluster)
}

_HEADER = (
    "schema_version",
    "kind",
    "run_id",
    "complete",
    "status",
    "started_at",
    "started_utc",
    "finished_at",
    "finished_utc",
    "error",
    "host",
    "writer",
    "versions",
    "git",
)
_READER_ONLY = ("recorded_status", "status_reason")


def parse_status(word: Any, complete: Any = None) -> tuple[RunStatus, str]:
    """(status, detail) of a recorded status word, from any servebench version.

    ``complete`` is meta.json's boolean, used when no word was recorded: True means
    complete, False means the run was never finalised (``running``), absent means unknown.
    A word nobody knows reads as ``unknown`` with the word in the detail (a reader does not
    refuse a run for it).
    """
    text = str(word).strip() if word is not None else ""
    if not text:
        if complete is True:
            return RunStatus.COMPLETE, ""
        return (RunStatus.RUNNING, "") if complete is False else (RunStatus.UNKNOWN, "meta.json records no status")
    try:
        return RunStatus(text), ""
    except ValueError:
        pass
    head, _, detail = text.partition(":")
    status = LEGACY_STATUS.get(head.strip())
    if status is None:
        return RunStatus.UNKNOWN, f"meta.json records the status {text!r}, which this servebench does not know"
    if head.strip() == "timeout" and not detail.strip():
        detail = "the wait for the run timed out"
    return status, detail.strip()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass
class RunMeta:
    """One run's meta.json. Mutable while its run goes on; readers get a fresh one per read.

    ``recorded_status`` and ``status_reason`` are set by readers only: the word meta.json
    holds when it differs from :attr:`status` (an old word, or a status a reader derived),
    and why the reader derived it.
    """

    kind: str
    run_id: str
    status: RunStatus = RunStatus.RUNNING
    schema_version: int | None = None
    started_at: float | None = None
    started_utc: str | None = None
    finished_at: float | None = None
    finished_utc: str | None = None
    error: str | None = None
    host: dict[str, Any] = field(default_factory=dict)
    writer: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    recorded_status: str = ""
    status_reason: str = ""

    def __post_init__(self) -> None:
        clash = sorted(set(self.details) & set(_HEADER + _READER_ONLY))
        if clash:
            raise ValueError(f"run metadata details may not use the header keys {clash}")

    @property
    def complete(self) -> bool:
        return self.status is RunStatus.COMPLETE

    @property
    def incomplete(self) -> bool:
        """False when complete, or when nothing was recorded to tell; True otherwise (reports warn)."""
        if self.status is RunStatus.UNKNOWN:
            return bool(self.recorded_status)  # e.g. recorded running, writer on another host
        return self.status is not RunStatus.COMPLETE

    def finish(self, status: RunStatus, *, error: str | None = None, now: float | None = None) -> None:
        """End the run: its final status, the finish time and, unless complete, why.

        The one way any run (load, tuning, pipeline) records how it ended.
        """
        status = RunStatus(status)
        if not status.final:
            raise ValueError(f"a run finishes complete, failed or interrupted, not {status.value!r}")
        end = time.time() if now is None else now
        self.status = status
        self.finished_at = end
        self.finished_utc = utc_iso(end)
        self.error = None if status is RunStatus.COMPLETE else (error or None)

    def to_json(self) -> dict[str, Any]:
        """meta.json's content: the header keys readers have always used, then the details."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "run_id": self.run_id,
            "complete": self.complete,
            "status": self.status.value,
            "started_at": self.started_at,
            "started_utc": self.started_utc,
            "finished_at": self.finished_at,
            "finished_utc": self.finished_utc,
            "error": self.error,
            "host": self.host,
            "writer": self.writer,
            "versions": self.versions,
            "git": self.git,
        }
        if self.recorded_status:
            data["recorded_status"] = self.recorded_status
        if self.status_reason:
            data["status_reason"] = self.status_reason
        return {**data, **self.details}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, default_run_id: str = "") -> RunMeta:
        """The record a meta.json holds, whichever servebench wrote it.

        Old status words are mapped by :func:`parse_status`; a missing ``kind`` is a load run
        (the only kind there was); a key this record does not name is kept in ``details``.
        """
        if not isinstance(data, Mapping):
            raise MetaError(f"meta.json must hold a JSON object, not {type(data).__name__}")
        word = data.get("status")
        status, detail = parse_status(word, data.get("complete"))
        recorded = str(data.get("recorded_status") or "")
        if not recorded and word is not None and str(word) != status.value:
            recorded = str(word)
        version = data.get("schema_version")
        return cls(
            kind=str(data.get("kind") or KIND_SERVING),
            run_id=str(data.get("run_id") or default_run_id),
            status=status,
            schema_version=int(version) if isinstance(version, int | float) and not isinstance(version, bool) else None,
            started_at=_number(data.get("started_at")),
            started_utc=data.get("started_utc") or None,
            finished_at=_number(data.get("finished_at")),
            finished_utc=data.get("finished_utc") or None,
            error=str(data["error"])
            if data.get("error")
            else (detail if status is RunStatus.FAILED and detail else None),
            host=_mapping(data.get("host")),
            writer=_mapping(data.get("writer")),
            versions=_mapping(data.get("versions")),
            git=_mapping(data.get("git")),
            details={k: v for k, v in data.items() if k not in _HEADER and k not in _READER_ONLY},
            recorded_status=recorded,
            status_reason=str(data.get("status_reason") or (detail if status is RunStatus.UNKNOWN else "")),
        )


def read_run_meta(path: Path) -> RunMeta | None:
    """The RunMeta in ``path`` (a meta.json), None when there is no such file.

    Raises :class:`MetaError` naming the file when it is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetaError(f"{path} is not valid JSON: {exc}") from None
    try:
        return RunMeta.from_json(data, default_run_id=path.parent.name)
    except MetaError as exc:
        raise MetaError(f"{path}: {exc}") from None
