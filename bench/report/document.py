"""A tiny document model rendered twice: to Markdown (report.md) and to self-contained HTML.

Why: report.md and report.html must say the same thing; building one list of blocks and
rendering it two ways keeps them in step. The HTML embeds every figure as a base64 PNG
``data:`` URI and inline CSS, so it opens offline and fetches nothing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Block", "Document", "kv_rows", "to_html", "to_markdown"]


@dataclass(frozen=True)
class Block:
    """kind: 'h1' | 'h2' | 'h3' | 'p' | 'ul' | 'table' | 'figure' | 'pre'."""

    kind: str
    text: str = ""
    items: Sequence[str] = ()
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()
    image: str = ""  # figure stem (files stem.png / stem.svg beside the report)
    align: str = ""  # per-column 'l'/'r' for tables; default: first left, the rest right


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, kind: str, text: str = "", **kw: Any) -> None:
        self.blocks.append(Block(kind, text, **kw))


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    from bench.report.tables import markdown_table

    return markdown_table(columns, rows, align or None)


def to_markdown(doc: Document, figure_dir: str = "figures") -> str:
    out = [f"# {doc.title}\n"]
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + f" {b.text}\n")
        elif b.kind == "p":
            out.append(b.text + "\n")
        elif b.kind == "ul":
            out.append("\n".join(f"- {item}" for item in b.items) + "\n")
        elif b.kind == "table":
            out.append((b.text + "\n\n" if b.text else "") + _md_table(b.columns, b.rows, b.align))
        elif b.kind == "figure":
            out.append(f"![{b.text}]({figure_dir}/{b.image}.png)\n\n*{b.text}* "
                       f"([SVG]({figure_dir}/{b.image}.svg))\n")
        elif b.kind == "pre":
            out.append("```\n" + b.text.rstrip("\n") + "\n```\n")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
figure{margin:1em 0 2em}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-style:italic;color:#555}
pre{background:#f6f6f6;padding:0.6em;overflow-x:auto}
.warn{color:#a00;font-weight:bold}
"""


def to_html(doc: Document, figure_dir: Path) -> str:
    """Self-contained HTML: figures read from ``figure_dir`` and inlined as data URIs."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>", f"<h1>{e(doc.title)}</h1>"]
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            level = int(b.kind[1])
            out.append(f"<h{level}>{e(b.text)}</h{level}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            if b.text:
                out.append(f"<p>{_inline(b.text)}</p>")
            left = [a == "l" for a in b.align] if b.align else [i == 0 for i in range(len(b.columns))]
            style = ['' if i == 0 or not flag else ' style="text-align:left"' for i, flag in enumerate(left)]
            head = "".join(f"<th{style[i]}>{e(str(c))}</th>" for i, c in enumerate(b.columns))
            body = "".join("<tr>" + "".join(f"<td{style[i]}>{e(str(c))}</td>" for i, c in enumerate(row)) + "</tr>"
                           for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "figure":
            data = base64.b64encode((figure_dir / f"{b.image}.png").read_bytes()).decode("ascii")
            out.append(f'<figure><img alt="{e(b.text)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(b.text)}</figcaption></figure>")
        elif b.kind == "pre":
            out.append(f"<pre>{e(b.text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` (the only inline Markdown the report uses)."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def kv_rows(mapping: Mapping[str, Any]) -> list[list[str]]:
    return [[str(k), str(v)] for k, v in mapping.items()]
