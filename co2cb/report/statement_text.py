"""A :class:`~co2cb.report.statement.Statement` as prose: plain text, Markdown or LaTeX.

One paragraph per run, after a paragraph on their totals when there are several (Markdown and
LaTeX add a breakdown table then). Every estimated figure is named as an estimate, and each
run's paragraph says which co2cb version recorded it and where the method is described.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence

from co2cb.report.statement import LABELS, RunFigures, Statement, join_names
from co2cb.units import format_duration, format_energy, format_mass

#: Where the method is described: in the installed package (``co2cb/docs/methodology.md``) and the repository.
METHODOLOGY = (
    "co2cb/docs/methodology.md (shipped with the co2cb package; "
    "https://github.com/co2cb/co2cb/blob/main/co2cb/docs/methodology.md)"
)


# --------------------------------------------------------------------------- sentences
def _estimated_sentence(parts: Sequence[tuple[str, str]]) -> str:
    """``parts`` are (component label, where); empty -> all measured."""
    if not parts:
        return "All energy figures were measured."
    named = join_names([f"{label}{where}" for label, where in parts])
    return f"Estimated, not measured: {named}; estimates rest on the models and constants named above."


def run_sentences(f: RunFigures) -> list[str]:
    """The paragraph on one run, as plain-text sentences."""
    parts = ", ".join(f"{p.title} {format_energy(p.kwh)} ({p.label}: {p.method})" for p in f.parts)
    said = [
        f"The {f.title} ran for {format_duration(f.seconds)} from {f.start_date} on {f.hardware}.",
        f"It used {format_energy(f.kwh)} of electricity before PUE: {parts or 'no energy recorded'}.",
        f"With a PUE of {f.pue:g} ({f.pue_source}) and a carbon intensity of {f.g_per_kwh:.4g} gCO2e/kWh "
        f"({f.intensity_kind}, for {f.location}; {f.intensity_source}), this amounts to {format_mass(f.co2_kg)} "
        "CO2e.",
    ]
    if f.marginal is not None:
        co2, g, source = f.marginal
        said.append(
            f"With the marginal intensity of {g:.4g} gCO2e/kWh ({source}) the same energy amounts to "
            f"{format_mass(co2)} CO2e."
        )
    said.append(_estimated_sentence([(p.title, "") for p in f.parts if p.estimated]))
    said += list(f.caveats)
    said.append(f"Recorded with co2cb {f.version}; method in {METHODOLOGY}.")
    return said


def total_sentences(s: Statement) -> list[str]:
    """The paragraph on several runs together, as plain-text sentences."""
    runs = "; ".join(f'"{r.name}" ({format_duration(r.seconds)})' for r in s.runs)
    parts = ", ".join(
        f"{LABELS.get(c, c)} {format_energy(s.component_kwh(c))} ({s.component_label(c)})" for c in s.components()
    )
    said = [
        f"This work comprises {len(s.runs)} runs recorded with co2cb {s.versions}: {runs}; "
        f"{format_duration(s.seconds)} in all.",
        f"Together they used {format_energy(s.kwh)} of electricity before PUE: {parts or 'no energy recorded'}, "
        f"amounting to {format_mass(s.co2_kg)} CO2e with each run's own PUE and carbon intensity (below).",
    ]
    if all(r.marginal is not None for r in s.runs):
        said.append(
            f"With each run's marginal intensity they amount to "
            f"{format_mass(sum(r.marginal[0] for r in s.runs if r.marginal))} CO2e."
        )
    estimated = [(p.title, f' in "{r.name}"') for r in s.runs for p in r.parts if p.estimated]
    said.append(_estimated_sentence(estimated))
    return said


# --------------------------------------------------------------------------- formats
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))
_MARKDOWN_RE = re.compile(r"([\\`*_\[\]<>|#])")
_QUOTED_RE = re.compile(r'"([^"]*)"')


def latex_escape(text: str) -> str:
    """Plain text as LaTeX: special characters escaped, quotes typeset, CO2 with a subscript 2, µ in math."""
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], text)
    text = _QUOTED_RE.sub(r"``\1''", text)
    return text.replace("CO2", "CO$_2$").replace("µ", "$\\mu$")


def markdown_escape(text: str) -> str:
    """Plain text as Markdown: characters that would format escaped."""
    return _MARKDOWN_RE.sub(r"\\\1", text)


def _table(s: Statement, escape: Callable[[str], str]) -> list[list[str]]:
    """Rows of the per-run breakdown: header first; every cell escaped."""
    components = s.components()
    rows = [
        [
            "run",
            "duration",
            *(f"{LABELS.get(c, c)} (kWh)" for c in components),
            "total (kWh)",
            "CO2e",
            "gCO2e/kWh",
            "PUE",
        ]
    ]
    for r in s.runs:
        by = {p.component: p for p in r.parts}
        cells = [
            f"{by[c].kwh:.4g}" + (f" ({by[c].label})" if by[c].label != "measured" else "") if c in by else "-"
            for c in components
        ]
        rows.append(
            [
                r.name,
                format_duration(r.seconds),
                *cells,
                f"{r.kwh:.4g}",
                format_mass(r.co2_kg),
                f"{r.g_per_kwh:.4g}",
                f"{r.pue:g}",
            ]
        )
    totals = [f"{s.component_kwh(c):.4g}" for c in components]
    rows.append(["total", format_duration(s.seconds), *totals, f"{s.kwh:.4g}", format_mass(s.co2_kg), "", ""])
    return [[escape(c) for c in row] for row in rows]


def _paragraphs(s: Statement) -> list[list[str]]:
    if len(s.runs) == 1:
        return [run_sentences(s.runs[0])]
    return [total_sentences(s), *(run_sentences(r) for r in s.runs)]


def render_text(s: Statement, width: int = 100) -> str:
    """Plain text: a paragraph per run, after the totals when there are several."""
    return "\n\n".join(textwrap.fill(" ".join(p), width=width, break_on_hyphens=False) for p in _paragraphs(s)) + "\n"


def render_markdown(s: Statement) -> str:
    """Markdown: the paragraphs, and a breakdown table when there are several runs."""
    paragraphs = [markdown_escape(" ".join(p)) for p in _paragraphs(s)]
    if len(s.runs) > 1:
        rows = _table(s, markdown_escape)
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        paragraphs.insert(1, "\n".join(lines))
    return "\n\n".join(paragraphs) + "\n"


def render_latex(s: Statement) -> str:
    """LaTeX: the paragraphs, and a breakdown ``tabular`` when there are several runs (no package needed)."""
    paragraphs = [latex_escape(" ".join(p)) for p in _paragraphs(s)]
    if len(s.runs) > 1:
        rows = _table(s, latex_escape)
        body = [
            "\\begin{tabular}{l" + "r" * (len(rows[0]) - 1) + "}",
            "\\hline",
            " & ".join(rows[0]) + " \\\\",
            "\\hline",
            *(" & ".join(r) + " \\\\" for r in rows[1:-1]),
            "\\hline",
            " & ".join(rows[-1]) + " \\\\",
            "\\hline",
            "\\end{tabular}",
        ]
        paragraphs.insert(1, "\n".join(body))
    return "\n\n".join(paragraphs) + "\n"
