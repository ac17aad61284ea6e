"""The ``co2_eq_emissions`` metadata of a Hugging Face model card, from a statement's figures.

The Hub reads it from the YAML front matter of a model's ``README.md``
(https://huggingface.co/docs/hub/model-cards-co2): ``emissions`` (grams of CO2), ``source``,
``training_type`` (``pre-training`` or ``fine-tuning``), ``geographical_location`` and
``hardware_used``. ``source`` names what was measured and what was estimated, and how, so the card
hides no estimate; when the emissions are a lower bound (a run killed before its summary, a meter
lost) it says so and why, and a comment above ``emissions`` points to it. The YAML is written by
hand (strings as JSON strings, which YAML reads as double-quoted scalars); no YAML library is needed.
"""

from __future__ import annotations

import json

from co2cb.report.statement import Statement

FORMAT = "hf-model-card"
TRAINING_TYPES = ("pre-training", "fine-tuning")
KEY = "co2_eq_emissions"


def yaml_number(value: float) -> str:
    """A float YAML 1.1 and 1.2 both read as a number (6 significant digits; ``1e-05`` -> ``1.0e-05``)."""
    text = f"{value:.6g}"
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def yaml_string(text: str) -> str:
    """A double-quoted YAML string."""
    return json.dumps(text, ensure_ascii=False)


def card_source(s: Statement) -> str:
    """The ``source`` field: co2cb, and per component whether it was measured or estimated and how."""
    parts = []
    for component in s.components():
        methods = dict.fromkeys(p.method for r in s.runs for p in r.parts if p.component == component)
        title = next(p.title for r in s.runs for p in r.parts if p.component == component)
        parts.append(f"{title} {s.component_label(component)} ({' / '.join(methods)})")
    conversions = [
        f"{'' if len(s.runs) == 1 else r.name + ': '}PUE {r.pue:g} ({r.pue_source}), "
        f"{r.g_per_kwh:.4g} gCO2e/kWh {r.intensity_kind} ({r.intensity_source})"
        for r in s.runs
    ]
    runs = "" if len(s.runs) == 1 else f", {len(s.runs)} runs"
    bounds = lower_bounds(s)
    said = f"; emissions are a lower bound: {' '.join(bounds)}" if bounds else ""
    return f"co2cb {s.versions}{runs}: " + "; ".join(parts + conversions) + said


def lower_bounds(s: Statement) -> list[str]:
    """The caveats that make the emissions a lower bound (a run killed before its summary, a lost meter)."""
    return [f"{'' if len(s.runs) == 1 else r.name + ': '}{c}" for r in s.runs for c in r.caveats if "lower bound" in c]


def _training_type(s: Statement, given: str | None) -> str | None:
    if given:
        return given
    tagged = list(dict.fromkeys(r.training_type for r in s.runs if r.training_type))
    return " and ".join(tagged) if tagged and all(r.training_type for r in s.runs) else None


def model_card(s: Statement, training_type: str | None = None) -> str:
    """The ``co2_eq_emissions`` block, ready to paste into a model card's YAML front matter.

    Args:
        s: The statement of the runs that trained the model.
        training_type: ``"pre-training"`` or ``"fine-tuning"``; default: the runs' ``training_type`` tag when
            every run has one, else the field is left out (a comment says how to give it).
    """
    kind = _training_type(s, training_type)
    lines = [
        f"{KEY}:",
        *(["  # emissions is a lower bound: see source"] if lower_bounds(s) else []),
        f"  emissions: {yaml_number(s.co2_kg * 1000.0)}",
        f"  source: {yaml_string(card_source(s))}",
        f"  training_type: {yaml_string(kind)}"
        if kind
        else f"  # training_type: {' or '.join(TRAINING_TYPES)} (co2cb statement --training-type ...)",
        f"  geographical_location: {yaml_string('; '.join(dict.fromkeys(r.location for r in s.runs)))}",
        f"  hardware_used: {yaml_string('; '.join(dict.fromkeys(r.hardware for r in s.runs)))}",
    ]
    return "\n".join(lines) + "\n"
