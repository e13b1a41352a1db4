"""The index formulas (docs/domain.md §4) and the BJGP worked examples."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.continuity.domain.indices import IndexSet, coc, hhi, index_set, kpc, mmci, secon, upc

pytestmark = pytest.mark.unit

providers = st.lists(st.sampled_from("ABCDEFG"), max_size=40)
nonempty = st.lists(st.sampled_from("ABCDEFG"), min_size=1, max_size=40)
at_least_two = st.lists(st.sampled_from("ABCDEFG"), min_size=2, max_size=40)


# BJGP 2023;73:279, Table 2 (values rounded to two decimals in the paper).
@pytest.mark.parametrize(
    ("sequence", "expected_upc", "expected_coc"),
    [
        ("AA", 1.0, 1.0),
        ("AB", 0.5, 0.0),
        ("AAB", 0.67, 0.33),
        ("AABB", 0.5, 0.33),
        ("AAABBB", 0.5, 0.4),
        ("AAAABBBB", 0.5, 0.43),
        ("AAAABCDE", 0.5, 0.21),
    ],
)
def test_worked_examples_from_bjgp_table_2(sequence: str, expected_upc: float, expected_coc: float) -> None:
    assert round(upc(sequence), 2) == expected_upc
    assert round(coc(sequence), 2) == expected_coc
    result = index_set(sequence)
    assert round(result.upc, 2) == expected_upc
    assert round(result.coc, 2) == expected_coc


def test_alternating_providers_have_coc_but_no_sequential_continuity() -> None:
    assert coc("ABABAB") == pytest.approx(0.4)
    assert secon("ABABAB") == 0
    assert index_set("ABABAB").secon == 0


def test_sequential_continuity_counts_same_provider_consecutive_pairs() -> None:
    assert secon("AAABBB") == pytest.approx(4 / 5)


def test_herfindahl_and_mmci_of_a_known_sequence() -> None:
    assert hhi("AAB") == pytest.approx(5 / 9)
    assert mmci("AAB") == pytest.approx((1 - 2 / 3.1) / (1 - 1 / 3.1))


def test_no_visits_gives_null_everywhere_never_zero() -> None:
    assert index_set([], ["A"], min_visits=3) == IndexSet(0, None, None, None, None, None, None, False)
    for formula in (coc, upc, secon, hhi, mmci):
        assert formula([]) is None


def test_a_single_visit_leaves_coc_and_secon_undefined() -> None:
    result = index_set(["A"], ["A"])
    assert result.coc is None and result.secon is None
    assert result.upc == result.hhi == result.mmci == result.kpc == 1.0


def test_kpc_is_the_share_of_visits_with_any_of_the_patients_fast_lakarkontakt() -> None:
    assert kpc("AABC", {"A"}) == 0.5
    assert kpc("AABC", {"A", "C"}) == 0.75
    assert index_set("AABC", ("A", "C")).kpc == 0.75
    assert index_set("AABC", ("A", "A")).kpc == 0.5  # a repeated FLK id counts once


def test_kpc_is_null_without_a_fast_lakarkontakt() -> None:
    assert kpc("AAB", ()) is None
    assert index_set("AAB", ()).kpc is None


def test_kpc_is_zero_when_the_fast_lakarkontakt_was_never_seen() -> None:
    assert index_set("AAB", ("Z",)).kpc == 0.0


def test_eligibility_is_at_least_min_visits_and_indices_are_reported_anyway() -> None:
    below = index_set("AB", min_visits=3)
    assert below.eligible is False and below.coc == 0.0
    assert index_set("ABA", min_visits=3).eligible is True


@given(providers, st.sets(st.sampled_from("ABCZ")))
def test_one_pass_index_set_equals_the_plain_formulas(sequence: list[str], flk: set[str]) -> None:
    result = index_set(sequence, flk)
    assert result.visits == len(sequence)
    for name, formula in (("coc", coc), ("upc", upc), ("secon", secon), ("hhi", hhi), ("mmci", mmci)):
        expected = formula(sequence)
        actual = getattr(result, name)
        assert (actual is None) == (expected is None), name
        if expected is not None:
            assert actual == pytest.approx(expected, abs=1e-12), name
    expected_kpc = kpc(sequence, flk)
    assert (result.kpc is None) == (expected_kpc is None)
    if expected_kpc is not None:
        assert result.kpc == pytest.approx(expected_kpc)


@given(providers, st.sets(st.sampled_from("ABCZ")))
def test_every_defined_index_lies_between_zero_and_one(sequence: list[str], flk: set[str]) -> None:
    result = index_set(sequence, flk)
    for value in result[1:7]:
        assert value is None or 0.0 <= value <= 1.0


@given(nonempty, st.randoms(use_true_random=False))
def test_coc_upc_hhi_mmci_and_kpc_do_not_depend_on_order(sequence: list[str], rnd) -> None:
    shuffled = list(sequence)
    rnd.shuffle(shuffled)
    a, b = index_set(sequence, ("A",)), index_set(shuffled, ("A",))
    for name in ("coc", "upc", "hhi", "mmci", "kpc"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or x == pytest.approx(y, abs=1e-12), name


def test_secon_depends_on_order() -> None:
    assert secon("AABB") != secon("ABAB")


@given(at_least_two)
def test_coc_equals_n_hhi_minus_one_over_n_minus_one(sequence: list[str]) -> None:
    n = len(sequence)
    assert coc(sequence) == pytest.approx((n * hhi(sequence) - 1) / (n - 1), abs=1e-12)


@given(st.sampled_from("ABC"), st.integers(min_value=1, max_value=50))
def test_all_visits_to_one_provider_give_one(provider: str, n: int) -> None:
    result = index_set([provider] * n, (provider,))
    assert result.upc == result.hhi == result.mmci == result.kpc == 1.0
    if n >= 2:
        assert result.coc == result.secon == 1.0


@given(at_least_two)
def test_all_different_providers_give_zero_coc_and_secon(sequence: list[str]) -> None:
    distinct = [f"P{i}" for i in range(len(sequence))]
    result = index_set(distinct)
    assert result.coc == 0.0 and result.secon == 0.0
    assert math.isclose(result.upc, 1 / len(distinct))
