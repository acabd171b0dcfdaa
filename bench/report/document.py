"""A tiny document model rendered twice: to Markdown (report.md) and to self-contained HTML.

Why: report.md and report.html must say the same thing; building one list of blocks and
rendering it two ways keeps them in step. The HTML embeds every figure as a base64 PNG
``data:`` URI and inline CSS, so it opens offline and fetches nothing.

Both renderings open with a contents list and an index of the figures (generated from the
blocks, so they cannot drift from the body). The HTML is laid out for a laptop screen and
still reads at ~800 px: wide tables scroll inside their own box instead of widening the
page, number cells never wrap mid-value, and figures scale down to the column width.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report.tables import markdown_table

__all__ = ["Block", "Document", "column_align", "kv_rows", "slug", "to_html", "to_markdown"]


@dataclass(frozen=True)
class Block:
    """kind: 'h1' | 'h2' | 'h3' | 'p' | 'ul' | 'table' | 'figure' | 'pre' | 'warnings'.

    'warnings' is a highlighted list (``items``) with ``text`` as its heading: what a
    reader must know before trusting the numbers."""

    kind: str
    text: str = ""
    items: Sequence[str] = ()
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()
    image: str = ""  # figure stem (files stem.png / stem.svg beside the report)
    align: str = ""  # per-column 'l'/'r' for tables; default: see column_align


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, kind: str, text: str = "", **kw: Any) -> None:
        self.blocks.append(Block(kind, text, **kw))

    def sections(self) -> list[str]:
        """The h2 headings, in order (the contents list)."""
        return [b.text for b in self.blocks if b.kind == "h2"]

    def figures(self) -> list[Block]:
        """The figure blocks, in order (the figure index)."""
        return [b for b in self.blocks if b.kind == "figure"]


# A cell that reads as a number (optionally with a '*' flag, a unit-less ratio expression
# such as "0.03 / 0.24 = 0.137", or a dash for "none"): right-aligned so digits line up.
_NUMERIC = re.compile(r"^[\s\d.,:+\-/=*%e]*$|^–$")
# Step flags (bench.report.flags) inside a number cell: "4.21 ✗3/512", "⚠ saturated", or a
# cell that is only "failed: 100/100 refused". They do not make a number column text.
_FLAG_MARKS = re.compile(r"✗\d+/\d+|⚠ saturated|^failed: \d+/\d+.*$")


def column_align(columns: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """Per-column 'l'/'r': ``align`` when given, else first column left, then right for
    columns whose every cell reads as a number and left for text columns (names, modes)."""
    if align:
        return align
    out = []
    for i in range(len(columns)):
        cells = [_FLAG_MARKS.sub("", str(row[i])) for row in rows if i < len(row)]
        numeric = any(c.strip() for c in cells) and all(_NUMERIC.match(c) for c in cells)
        out.append("l" if i == 0 or not numeric else "r")
    return "".join(out)


def slug(text: str) -> str:
    """GitHub's heading anchor for ``text`` (so the Markdown contents links work there too)."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


def _fig_id(block: Block) -> str:
    return f"fig-{slug(block.image)}"


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    return markdown_table(columns, rows, column_align(columns, rows, align))


def to_markdown(doc: Document, figure_dir: str = "figures") -> str:
    out = [f"# {doc.title}\n"]
    out += _md_index(doc)
    figure_no = 0
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
            figure_no += 1
            out.append(
                f'<a id="{_fig_id(b)}"></a>\n\n![{b.text}]({figure_dir}/{b.image}.png)\n\n'
                f"**Figure {figure_no}.** *{b.text}* "
                f"([PNG]({figure_dir}/{b.image}.png), [SVG]({figure_dir}/{b.image}.svg))\n"
            )
        elif b.kind == "pre":
            out.append("```\n" + b.text.rstrip("\n") + "\n```\n")
        elif b.kind == "warnings":
            out.append(f"> **{b.text}**\n>\n" + "\n".join(f"> - {item}" for item in b.items) + "\n")
    return "\n".join(out)


def _md_index(doc: Document) -> list[str]:
    out = []
    if doc.sections():
        out.append("**Contents:** " + " · ".join(f"[{s}](#{slug(s)})" for s in doc.sections()) + "\n")
    figs = doc.figures()
    if figs:
        out.append(f"**Figures in this report ({len(figs)}):**\n")
        out.append("\n".join(f"{i}. [{b.text}](#{_fig_id(b)})" for i, b in enumerate(figs, 1)) + "\n")
    return out


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;max-width:1200px;
 margin:0 auto;padding:1.5em 1.25em 3em;color:#222;background:#fff}
h1{font-size:1.7em;margin:0 0 .4em;overflow-wrap:anywhere}
h2{font-size:1.35em;margin:2em 0 .6em;padding-bottom:.2em;border-bottom:2px solid #e4e4e4}
h3{font-size:1.1em;margin:1.5em 0 .5em}
a{color:#0b57a4}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em;background:#f2f2f2;
 padding:0 .25em;border-radius:3px}
nav.index{background:#f7f8fa;border:1px solid #e2e5ea;border-radius:6px;padding:.6em 1em;margin:1em 0 1.5em}
nav.index p{margin:.3em 0}
nav.index ol{margin:.2em 0 .3em;padding-left:1.6em}
.table-wrap{max-width:100%;overflow-x:auto;margin:0 0 1.5em}
.table-cap{margin:1em 0 .4em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #d4d4d4;padding:3px 8px;text-align:right;white-space:nowrap;
 font-variant-numeric:tabular-nums;vertical-align:top}
th{background:#f0f2f5;vertical-align:bottom;white-space:normal}
.nw,th:first-child{white-space:nowrap}
th.l,td.l{text-align:left}
td.wrap{white-space:normal;overflow-wrap:break-word}
tbody tr:nth-child(even){background:#fafbfc}
figure{margin:1em 0 2em}
figure img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-style:italic;color:#555;margin-top:.3em}
figcaption .n{font-style:normal;font-weight:600;color:#333}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
ul{padding-left:1.4em}
.warnings{background:#fff6e0;border:1px solid #e8c36a;border-left:5px solid #d99a00;border-radius:4px;
 padding:.5em 1em;margin:1em 0 1.5em}
.warnings p{margin:.2em 0}
li{margin:.15em 0}
"""


def to_html(doc: Document, figure_dir: Path) -> str:
    """Self-contained HTML: figures read from ``figure_dir`` and inlined as data URIs."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    out += _html_index(doc)
    figure_no = 0
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            level = int(b.kind[1])
            out.append(f'<h{level} id="{slug(b.text)}">{e(b.text)}</h{level}>')
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            out.append(_html_table(b))
        elif b.kind == "figure":
            figure_no += 1
            data = base64.b64encode((figure_dir / f"{b.image}.png").read_bytes()).decode("ascii")
            files = f"{figure_dir.name}/{b.image}"
            out.append(
                f'<figure id="{_fig_id(b)}"><img alt="{e(b.text)}" src="data:image/png;base64,{data}">'
                f'<figcaption><span class="n">Figure {figure_no}.</span> {e(b.text)} '
                f'(full size: <a href="{e(files)}.png">PNG</a>, <a href="{e(files)}.svg">SVG</a>)'
                "</figcaption></figure>"
            )
        elif b.kind == "pre":
            out.append(f"<pre>{e(b.text)}</pre>")
        elif b.kind == "warnings":
            out.append(
                f'<div class="warnings" role="note"><p><strong>{e(b.text)}</strong></p><ul>'
                + "".join(f"<li>{_inline(i)}</li>" for i in b.items)
                + "</ul></div>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_index(doc: Document) -> list[str]:
    e = html.escape
    parts = []
    if doc.sections():
        parts.append(
            "<p><strong>Contents:</strong> "
            + " · ".join(f'<a href="#{slug(s)}">{e(s)}</a>' for s in doc.sections())
            + "</p>"
        )
    figs = doc.figures()
    if figs:
        parts.append(
            f'<p><strong>Figures in this report (<span id="figure-count">{len(figs)}</span>):'
            "</strong></p><ol>" + "".join(f'<li><a href="#{_fig_id(b)}">{e(b.text)}</a></li>' for b in figs) + "</ol>"
        )
    return ['<nav class="index">' + "".join(parts) + "</nav>"] if parts else []


def _html_table(b: Block) -> str:
    """A table in its own horizontally scrolling box; text columns after the first may wrap."""
    e = html.escape
    align = column_align(b.columns, b.rows, b.align)
    left = ' class="l"'
    th_cls = [left if a == "l" else "" for a in align]
    td_cls = [(' class="l wrap"' if i else left) if a == "l" else "" for i, a in enumerate(align)]
    head = "".join(f"<th{th_cls[i]}>{_keep_words(str(c))}</th>" for i, c in enumerate(b.columns))
    body = "".join(
        "<tr>" + "".join(f"<td{td_cls[i]}>{e(str(c))}</td>" for i, c in enumerate(row)) + "</tr>" for row in b.rows
    )
    caption = f'<p class="table-cap">{_inline(b.text)}</p>' if b.text else ""
    return f'{caption}<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _keep_words(text: str) -> str:
    """Escape a header; it may wrap between words but never inside a hyphenated name
    ("kubeflow-ibm"), so headers stay narrow without splitting target names."""
    return re.sub(r"(\S+-\S+)", r'<span class="nw">\1</span>', html.escape(text))


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` (the only inline Markdown the report uses)."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def kv_rows(mapping: Mapping[str, Any]) -> list[list[str]]:
    return [[str(k), str(v)] for k, v in mapping.items()]
