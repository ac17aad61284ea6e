"""Small HTML builders for the report: escaped text, tables, definition lists and the page shell.

Everything is inline (CSS in a ``<style>`` element, images as data URIs): the page needs no
other file and no network.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 75em;
       padding: 0 1.5em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #555; font-size: 0.92em; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.4em 0.8em; }
code { background: #f4f4f4; padding: 0 0.2em; }
""".strip()


def text(value: object) -> str:
    """``value`` as escaped HTML text."""
    return escape(str(value))


def link(url: str, label: str) -> str:
    """An escaped link."""
    return f'<a href="{escape(url)}">{escape(label)}</a>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = (), raw: bool = False) -> str:
    """A table; ``numeric`` columns are right-aligned; cells are escaped unless ``raw`` (already HTML)."""
    right = set(numeric)
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f"<td{' class=num' if i in right else ''}>{cell if raw else text(cell)}</td>" for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def definitions(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (term, already-escaped HTML) pairs."""
    return "<dl>" + "".join(f"<dt>{text(t)}</dt><dd>{d}</dd>" for t, d in pairs) + "</dl>"


def png_image(data: bytes, alt: str) -> str:
    """An ``<img>`` holding PNG bytes as a base64 data URI."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{escape(alt)}">'


def page(title: str, body: str) -> str:
    """A complete HTML document."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{text(title)}</title>\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>\n{CSS}\n</style>\n'
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
