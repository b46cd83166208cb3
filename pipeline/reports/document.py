"""A small document model rendered twice: as Markdown and as one self-contained HTML file.

Blocks are headings, paragraphs, bullet lists, tables and figures. Inline text may use
**bold**, *italic* and `code`. Every string passes through `anon` (the pseudonymizer) before it is
written, so no block can leak a name the report was asked to hide.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str = ""          # one letter per column: l, r or c (default: first l, rest r)
    caption: str = ""


@dataclass
class Figure:
    path: str                # relative to the report's folder, e.g. figures/idia_vs_k.png
    caption: str
    alt: str = ""


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(Heading(level, text))

    def p(self, text: str) -> None:
        self.blocks.append(Paragraph(text))

    def ul(self, items: Sequence[str]) -> None:
        self.blocks.append(Bullets(list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "",
              caption: str = "") -> None:
        self.blocks.append(Table(list(header), [list(map(str, r)) for r in rows], align, caption))

    def figure(self, path: str, caption: str, alt: str = "") -> None:
        self.blocks.append(Figure(path, caption, alt or caption.split(".")[0]))

    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


def _identity(text: str) -> str:
    return text


def _aligns(t: Table) -> str:
    a = t.align or ("l" + "r" * (len(t.header) - 1))
    return (a + "r" * len(t.header))[:len(t.header)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, anon: Callable[[str], str] = _identity) -> str:
    out = [f"# {anon(doc.title)}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * (b.level + 1) + " " + anon(b.text), ""]
        elif isinstance(b, Paragraph):
            out += [anon(b.text), ""]
        elif isinstance(b, Bullets):
            out += [f"- {anon(i)}" for i in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{anon(b.caption)}*", ""]
            sep = {"l": ":---", "r": "---:", "c": ":---:"}
            out.append("| " + " | ".join(_md_cell(anon(h)) for h in b.header) + " |")
            out.append("|" + "|".join(sep[a] for a in _aligns(b)) + "|")
            out += ["| " + " | ".join(_md_cell(anon(c)) for c in r) + " |" for r in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{_md_cell(anon(b.alt))}]({b.path})", "", f"*{anon(b.caption)}*", ""]
    return "\n".join(out).rstrip() + "\n"


_INLINE = re.compile(r"`(.+?)`|\*\*(.+?)\*\*|(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])")


def _inline_html(text: str) -> str:
    parts, pos = [], 0
    for m in _INLINE.finditer(text):
        parts.append(html.escape(text[pos:m.start()]))
        code, bold, italic = m.groups()
        if code is not None:
            parts.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            parts.append(f"<strong>{_inline_html(bold)}</strong>")
        else:
            parts.append(f"<em>{_inline_html(italic)}</em>")
        pos = m.end()
    parts.append(html.escape(text[pos:]))
    return "".join(parts)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; line-height: 1.5;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #e3e3e3; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .9rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .55rem; }
th { background: #f2f2f2; }
td.r, th.r { text-align: right; } td.l, th.l { text-align: left; } td.c, th.c { text-align: center; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .caption { font-size: .9rem; color: #444; font-style: italic; }
code { background: #f4f4f4; padding: 0 .2rem; border-radius: 3px; }
"""


def to_html(doc: Document, root: Path, anon: Callable[[str], str] = _identity) -> str:
    """One HTML file with every figure embedded as base64 (renders offline, no scripts)."""
    body = [f"<h1>{_inline_html(anon(doc.title))}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            lv = min(b.level + 1, 6)
            body.append(f"<h{lv}>{_inline_html(anon(b.text))}</h{lv}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline_html(anon(b.text))}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(anon(i))}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            al = _aligns(b)
            rows = ["<tr>" + "".join(f'<th class="{a}">{_inline_html(anon(h))}</th>'
                                     for h, a in zip(b.header, al)) + "</tr>"]
            body_rows = ["<tr>" + "".join(f'<td class="{a}">{_inline_html(anon(c))}</td>'
                                          for c, a in zip(r, al)) + "</tr>" for r in b.rows]
            cap = f'<p class="caption">{_inline_html(anon(b.caption))}</p>' if b.caption else ""
            body.append(f"{cap}<table><thead>{''.join(rows)}</thead><tbody>{''.join(body_rows)}</tbody></table>")
        elif isinstance(b, Figure):
            data = base64.b64encode((root / b.path).read_bytes()).decode("ascii")
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(anon(b.alt))}">'
                        f"<figcaption>{_inline_html(anon(b.caption))}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(anon(doc.title))}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
