"""Property-based tests: lookups fail only with UnknownRegionError, and every listed code resolves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from co2cb.intensity.database import Lookup, RegionEntry, UnknownRegionError, lookup, search

CODE_LIKE = st.one_of(
    st.text(),
    st.from_regex(r"[A-Za-z]{2,3}", fullmatch=True),
    st.from_regex(r"[A-Za-z]{2}-[A-Za-z0-9]{1,4}(-[A-Za-z0-9]{1,4})?", fullmatch=True),
    st.builds(
        lambda p, r: f"{p}:{r}",
        st.sampled_from(["aws", "gcp", "azure", "egrid", "em", "AWS", "x", ""]),
        st.text(max_size=30),
    ),
    st.text(alphabet=":- \t\n", max_size=10),
)

ENTRIES = search("")


@settings(max_examples=400, deadline=None)
@given(query=CODE_LIKE, marginal=st.booleans())
def test_lookup_raises_only_unknown_region_error(query: str, marginal: bool) -> None:
    try:
        found = lookup(query, marginal=marginal)
    except UnknownRegionError as exc:
        assert str(exc) and "co2cb regions" in str(exc)
        return
    assert isinstance(found, Lookup)
    assert 0 <= found.row.g_per_kwh <= 1500
    assert found.query == query


@settings(max_examples=200, deadline=None)
@given(query=st.text(max_size=20))
def test_search_never_raises(query: str) -> None:
    assert isinstance(search(query), list)


@settings(max_examples=300, deadline=None)
@given(entry=st.sampled_from(ENTRIES), upper=st.booleans())
def test_every_listed_code_resolves_to_what_the_listing_says(entry: RegionEntry, upper: bool) -> None:
    code = entry.code.upper() if upper else entry.code.lower()
    found = lookup(code)
    assert found.row.code == (entry.alias_of or entry.code)
    assert found.row.g_per_kwh == entry.g_per_kwh
