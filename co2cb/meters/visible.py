"""Which GPUs a process may use: ``*_VISIBLE_DEVICES`` and ``gpus=[...]``, read as CUDA and HIP read them.

Shared by the NVIDIA (NVML) and AMD (AMD SMI) meters. Devices are given in their
enumeration order (NVML index for NVIDIA, HIP/ROCr order for AMD), each with the
identifiers a list may name it by (``GPU-...`` UUIDs, ``MIG-...`` UUIDs of its MIG
slices). A list entry is an index into that order or a unique prefix of an
identifier (``GPU-`` or ``MIG-`` as written, hex digits in either case); the list
stops at the first entry that names no device or repeats one, as CUDA's does.
"""

from __future__ import annotations

from collections.abc import Sequence

_ID_PREFIXES = ("GPU-", "MIG-")


def _by_token(token: str, ids: Sequence[Sequence[str]]) -> int | None:
    """Position of the one device that ``token`` names, or None."""
    token = token.strip()
    if token.isdigit():
        i = int(token)
        return i if i < len(ids) else None
    if token.startswith(_ID_PREFIXES):
        low = token.lower()
        hits = {i for i, names in enumerate(ids) for name in names if name.lower().startswith(low)}
        return hits.pop() if len(hits) == 1 else None
    return None


def parse_visible(env: str | None, ids: Sequence[Sequence[str]]) -> list[int]:
    """Positions in ``ids`` that a ``*_VISIBLE_DEVICES`` value makes visible, in the list's order.

    Args:
        env: The variable's value; None (unset) makes every device visible, ``""`` none.
        ids: For each device in enumeration order, the identifiers it may be named by.
    """
    if env is None:
        return list(range(len(ids)))
    visible: list[int] = []
    for token in env.split(","):
        index = _by_token(token, ids)
        if index is None or index in visible:
            break  # CUDA and HIP ignore the rest of the list after an invalid entry
        visible.append(index)
    return visible


def choose(
    requested: Sequence[int | str] | None, visible: list[int], ids: Sequence[Sequence[str]], env: str
) -> list[int]:
    """Positions of the devices ``requested`` names, as ordinals among ``visible`` or by identifier.

    Args:
        requested: Explicit ordinals (positions among the visible devices) or identifiers; None for all visible.
        visible: Positions made visible by the environment (see :func:`parse_visible`).
        ids: Identifiers per device, as for :func:`parse_visible`.
        env: The environment as a user would read it in a message, e.g. ``"CUDA_VISIBLE_DEVICES='2,0'"``.

    Raises:
        ValueError: ``requested`` names a device that is not visible.
    """
    if requested is None:
        return list(visible)
    chosen: list[int] = []
    for item in requested:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            ordinal = int(item)
            if not 0 <= ordinal < len(visible):
                raise ValueError(
                    f"gpus={list(requested)!r}: CUDA ordinal {ordinal} is not visible "
                    f"({len(visible)} GPU(s) visible; {env})"
                )
            index = visible[ordinal]
        else:
            found = _by_token(str(item), ids)
            if found is None or found not in visible:
                raise ValueError(f"gpus={list(requested)!r}: no visible GPU has UUID {item!r}")
            index = found
        if index not in chosen:
            chosen.append(index)
    return chosen


def named(tokens: Sequence[int | str], names: Sequence[str]) -> list[str]:
    """Which of ``names`` the identifier entries of ``tokens`` name (by prefix, as :func:`parse_visible` reads them).

    Used to tell which MIG slice of a GPU a process was given.
    """
    found: list[str] = []
    for token in tokens:
        text = str(token).strip()
        if not text.startswith(_ID_PREFIXES):
            continue
        found.extend(n for n in names if n.lower().startswith(text.lower()) and n not in found)
    return found
