"""Render the report template to Markdown, and the Markdown to one self-contained HTML page.

The filters are the only place numbers are formatted; a missing value (None, NaN) shows as
"–" everywhere. Names are replaced by pseudonyms after rendering, on the whole text, so no
section can leak a name the report was asked to hide.
"""
from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import jinja2
from markdown_it import MarkdownIt

TEMPLATES = Path(__file__).parent / "templates"
MISSING = "–"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x, fmt: str = "{:.2f}") -> str:
    return MISSING if _missing(x) else fmt.format(x)


def pct(x, digits: int = 1) -> str:
    """A share (0.25) as a percentage ("25.0 %")."""
    return MISSING if _missing(x) else f"{100 * x:.{digits}f} %"


def pp(x) -> str:
    """A change of a share (-0.0075) in signed percentage points ("-0.8")."""
    return MISSING if _missing(x) else f"{100 * x:+.1f}"


def count_pct(count, percent) -> str:
    """"3 (3.8 %)": a count with its percentage (already in percent)."""
    return MISSING if _missing(count) else f"{count} ({num(percent, '{:.1f}')} %)"


def names(items: Sequence[str], limit: int = 8) -> str:
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items) or MISSING
    return ", ".join(items[:limit]) + f", … ({len(items) - limit} more)"


def md_cell(text: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=False)
    env.filters.update(num=num, pct=pct, pp=pp, count_pct=count_pct, names=names, md=md_cell)
    return env


def render_markdown(context: dict, anon: Callable[[str], str], template: str = "report.md.j2") -> str:
    text = environment().get_template(template).render(**context)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return anon(text)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; line-height: 1.5;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #e3e3e3; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .9rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .55rem; }
th { background: #f2f2f2; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 .2rem; border-radius: 3px; }
"""


def to_html(markdown: str, root: Path, title: str) -> str:
    """One HTML page with every figure embedded as base64 (renders offline, no scripts)."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def embed(match: re.Match) -> str:
        data = base64.b64encode((root / html.unescape(match.group(1))).read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[^"]+\.png)"', embed, body)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + body + "</body>\n</html>\n")
