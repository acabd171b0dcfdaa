"""The one redaction rule: :class:`Redactor` replaces every configured secret wherever it shows up.

Why one rule in one place: a remote endpoint may echo what it was sent -- a 401 body that
repeats the ``Authorization`` header, a ``Set-Cookie`` that repeats the session -- and that
text then travels on into ``requests.csv.gz`` (``error_detail``), ``meta.json``, logs, the
console, reports and the digit page's proxy answers.  Each of those sinks once had its own
partial scrubber (or none).  A :class:`Redactor` is built once from the secret *values*
(read from the environment variables the configuration names) and every sink applies the
same one, so a secret is replaced by ``[REDACTED:ENV_NAME]`` wherever it shows up.

What counts as an occurrence of a secret ``v`` (all cheap, precomputed once):

* ``v`` itself, and the parts a header value is made of: the token after ``Bearer `` /
  ``Basic `` (the scheme word stays readable), and each ``name=value`` pair of a cookie
  string and its value;
* ``v`` URL-encoded (``%2F`` / ``+`` forms), JSON-escaped, Python-``repr``-escaped (str and
  bytes reprs, as in ``DecodeError(f"... {body!r}")``), HTML-escaped, ``/`` as ``\\/``;
* ``v`` inside base64 text at any of the three byte alignments, in the standard and
  URL-safe alphabets (``Authorization: Basic base64(user:v)`` echoed back), when the
  aligned core is at least :data:`BASE64_MIN_CHARS` long;
* a *cut-off* piece of any of the above at the very end (or start) of a text, at least
  :data:`PARTIAL_MIN_CHARS` long: error details are truncated to a few hundred characters,
  and the cut can fall inside a secret, leaving its first half behind.  A trailing ``...``
  (the truncation mark) is looked through.

Overlapping occurrences (two secrets sharing characters, one secret inside another) are
merged into one replacement, so no fragment of either survives between two labels.

Empty values are ignored.  Values shorter than :data:`MIN_SECRET_CHARS` are still
redacted (a short secret is still a secret) but reported in :attr:`Redactor.short_names`
so the CLI can warn: short values also match ordinary text, which then gets redacted too.

This module sits in ``ground/`` (the lowest layer) and imports nothing from servebench,
so ``targets/``, ``webui/``, ``models/`` and ``bench/`` can all use it; ``bench/`` collects
the values from the configuration and hands them in (:mod:`bench.redact_secrets`).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

__all__ = [
    "BASE64_MIN_CHARS",
    "MIN_SECRET_CHARS",
    "PARTIAL_MIN_CHARS",
    "Redactor",
    "secret_forms",
]

#: Values shorter than this are redacted but flagged (the CLI warns).
MIN_SECRET_CHARS = 8
#: The shortest cut-off piece of a secret at a text's edge that is still redacted.
PARTIAL_MIN_CHARS = 6
#: The shortest base64 core (characters that depend only on the secret) searched for.
BASE64_MIN_CHARS = 8

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_TRUNCATION_MARKS = ("...", "\u2026")
_URLSAFE = str.maketrans("+/", "-_")

T = TypeVar("T", str, bytes)


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that depend only on ``data``, for each of the 3 alignments.

    When ``data`` sits at byte offset ``k`` of a longer string, its base64 text shares the
    characters whose 6-bit groups lie entirely inside ``data``: with ``s = k mod 3`` leading
    bytes, those are characters ``ceil(8s/6)`` up to (not including) ``floor(8(s+n)/6)``.
    """
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        core = encoded[-(-8 * shift // 6) : (8 * (shift + len(data))) // 6]
        if len(core) >= BASE64_MIN_CHARS:
            cores.add(core)
            cores.add(core.translate(_URLSAFE))
    return cores


def _without_scheme(value: str) -> str:
    """``value`` without a leading ``Bearer `` / ``Basic ``: the scheme word is not secret."""
    lowered = value.lower()
    for scheme in ("bearer ", "basic "):
        if lowered.startswith(scheme) and value[len(scheme) :].strip():
            return value[len(scheme) :].strip()
    return value


def _parts(value: str) -> set[str]:
    """The secret parts of a (header) value: itself without a scheme word, and cookie pairs."""
    value = _without_scheme(value)
    parts = {value}
    if "=" in value:
        for pair in value.split(";"):
            pair = pair.strip()
            _name, eq, cookie_value = pair.partition("=")
            cookie_value = cookie_value.strip().strip('"')
            if len(pair) >= MIN_SECRET_CHARS:
                parts.add(pair)
            if eq and len(cookie_value) >= MIN_SECRET_CHARS:
                parts.add(cookie_value)
    return parts


def secret_forms(value: str) -> set[str]:
    """Every string that counts as an occurrence of secret ``value`` (see the module docstring)."""
    forms: set[str] = set()
    for part in _parts(value):
        forms.update(
            {
                part,
                quote(part, safe=""),
                quote(part),  # "/" kept, as in URL paths
                quote_plus(part, safe=""),
                json.dumps(part)[1:-1],
                json.dumps(part, ensure_ascii=False)[1:-1],
                repr(part)[1:-1],
                repr(part.encode("utf-8"))[2:-1],
                html.escape(part),
                part.replace("/", "\\/"),
            }
        )
        forms.update(_base64_cores(part.encode("utf-8")))
    return {form for form in forms if form}


class Redactor:
    """Replaces every configured secret value with ``[REDACTED:NAME]`` in text, bytes and data.

    ``secrets``: name -> value (name = the environment variable, or a header name when no
    variable is known).  Empty values are ignored; when two names hold the same value the
    first name labels it.  Immutable; :meth:`merge` returns a new one.  ``repr`` never
    shows a value.
    """

    __slots__ = ("_byte_needles", "_needles", "_secrets")

    def __init__(self, secrets: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = secrets.items() if isinstance(secrets, Mapping) else secrets
        by_value: dict[str, str] = {}
        for name, value in pairs:
            if not _LABEL_NAME.fullmatch(str(name)):
                raise ValueError(f"secret name must look like an environment variable name, got {name!r}")
            if isinstance(value, str) and value:
                by_value.setdefault(value, str(name))
        self._secrets: tuple[tuple[str, str], ...] = tuple((name, value) for value, name in by_value.items())
        needles: dict[str, str] = {}
        for name, value in self._secrets:
            for form in sorted(secret_forms(value), key=len, reverse=True):
                needles.setdefault(form, f"[REDACTED:{name}]")
        self._needles: tuple[tuple[str, str], ...] = tuple(needles.items())
        self._byte_needles: tuple[tuple[bytes, bytes], ...] = tuple(
            (needle.encode("utf-8"), label.encode("ascii")) for needle, label in self._needles
        )

    # -- facts ------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """The names of the secrets held (never the values)."""
        return tuple(name for name, _ in self._secrets)

    @property
    def short_names(self) -> tuple[str, ...]:
        """Names whose value is shorter than :data:`MIN_SECRET_CHARS` (redacted; worth a warning)."""
        return tuple(name for name, value in self._secrets if len(_without_scheme(value)) < MIN_SECRET_CHARS)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor(names={list(self.names)!r})"

    def merge(self, *others: Redactor | None) -> Redactor:
        """A redactor holding this one's secrets and the others' (first name wins per value)."""
        pairs = list(self._secrets)
        for other in others:
            if other is not None:
                pairs.extend(other._secrets)
        return Redactor(pairs)

    # -- applying -----------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with every occurrence (and cut-off edge piece) of a secret replaced."""
        if not self._needles or not text:
            return text
        return _apply(text, self._needles, _TRUNCATION_MARKS)

    def redact_bytes(self, data: bytes) -> bytes:
        """As :meth:`redact`, on raw bytes (response bodies, log files), needles in UTF-8."""
        if not self._byte_needles or not data:
            return data
        return _apply(bytes(data), self._byte_needles, tuple(m.encode("utf-8") for m in _TRUNCATION_MARKS))

    def redact_data(self, value: Any) -> Any:
        """JSON-like data (mappings, lists, strings) with every string redacted, keys too."""
        if not self._needles:
            return value
        if isinstance(value, Mapping):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(v) for v in value]
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, bytes | bytearray):
            return self.redact_bytes(bytes(value))
        return value

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Header names and values redacted (for headers passed on to someone else)."""
        return {self.redact(k): self.redact(v) for k, v in headers.items()}


def _apply(text: T, needles: tuple[tuple[T, T], ...], marks: tuple[T, ...]) -> T:
    """Replace every span of ``text`` covered by a needle (or an edge piece of one)."""
    spans: list[tuple[int, int, T]] = []
    for needle, label in needles:
        start = text.find(needle)
        while start != -1:
            spans.append((start, start + len(needle), label))
            start = text.find(needle, start + 1)
    spans.extend(_edge_spans(text, needles, marks))
    if not spans:
        return text
    spans.sort(key=lambda s: (s[0], -s[1]))
    merged: list[list[Any]] = []
    for start, end, label in spans:
        if merged and start < merged[-1][1]:  # overlaps the previous span: one replacement
            last = merged[-1]
            last[1] = max(last[1], end)
            if label not in last[2]:
                last[2].append(label)
        else:
            merged.append([start, end, [label]])
    pieces: list[T] = []
    position = 0
    for start, end, labels in merged:
        pieces.append(text[position:start])
        pieces.append(labels[0] if len(labels) == 1 else labels[0][:0].join(sorted(set(labels))))
        position = end
    pieces.append(text[position:])
    return text[:0].join(pieces)


def _edge_spans(text: T, needles: tuple[tuple[T, T], ...], marks: tuple[T, ...]) -> list[tuple[int, int, T]]:
    """Spans of cut-off secret pieces: a needle's prefix ending the text, a suffix starting it.

    Why only at the edges: truncation (``text[:300]``, ``snippet``) cuts at the end, and a
    log tail can start mid-line; a piece in the middle of a text was not cut there.
    """
    end = len(text)
    for mark in marks:
        if text.endswith(mark):
            end -= len(mark)
            break
    spans: list[tuple[int, int, T]] = []
    for needle, label in needles:
        n = len(needle)
        if n <= PARTIAL_MIN_CHARS:
            continue
        # The text ends with a proper prefix of the needle: keep the longest such piece.
        head, lo, first = needle[:PARTIAL_MIN_CHARS], max(0, end - n + 1), -1
        i = text.find(head, lo, end)
        while i != -1:
            if needle.startswith(text[i:end]):
                first = i
                break
            i = text.find(head, i + 1, end)
        if first != -1:
            spans.append((first, end, label))
        # The text starts with a proper suffix of the needle: keep the longest such piece.
        tail, last = needle[-PARTIAL_MIN_CHARS:], -1
        j = text.find(tail, 0, n - 1)
        while j != -1:
            if needle.endswith(text[: j + PARTIAL_MIN_CHARS]):
                last = j
            j = text.find(tail, j + 1, n - 1)
        if last != -1:
            spans.append((0, last + PARTIAL_MIN_CHARS, label))
    return spans
