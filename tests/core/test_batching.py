"""Input validation and batch planning by count and estimated token budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllm_embed import InvalidInputError
from vllm_embed._batching import estimate_tokens, plan_batches, validate_texts


def test_validate_accepts_lists_tuples_generators_and_empty_strings() -> None:
    assert validate_texts(["a", ""]) == ["a", ""]
    assert validate_texts(("a",)) == ["a"]
    assert validate_texts(t for t in ["x", "y"]) == ["x", "y"]
    assert validate_texts([]) == []


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        (["a", None], "Input 1 is None"),
        (["a", "b", 3], "Input 2 is a int"),
        ([b"bytes"], "Input 0 is a bytes"),
        ("a single string", "single string"),
        (42, "list of strings"),
    ],
)
def test_validate_names_the_bad_input(texts: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        validate_texts(texts)


def test_invalid_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_texts([None])


def test_plan_by_count() -> None:
    assert plan_batches(["a"] * 5, 2, None) == [(0, 2), (2, 4), (4, 5)]
    assert plan_batches([], 2, None) == []
    assert plan_batches(["a"] * 5, 2, 10_000) == [(0, 2), (2, 4), (4, 5)]


def test_plan_by_token_budget() -> None:
    texts = ["x" * 30, "x" * 30, "x" * 30, "x"]  # 12, 12, 12, 2 estimated tokens
    assert plan_batches(texts, 100, 25) == [(0, 2), (2, 4)]


def test_an_input_over_budget_gets_its_own_batch() -> None:
    texts = ["a", "x" * 300, "b"]
    assert plan_batches(texts, 100, 10) == [(0, 1), (1, 2), (2, 3)]


def test_token_cap_limits_cost_of_inputs_that_will_be_truncated() -> None:
    texts = ["x" * 3000] * 4  # ~1002 estimated tokens each, but truncated to 100
    assert plan_batches(texts, 100, 250) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert plan_batches(texts, 100, 250, token_cap=100) == [(0, 2), (2, 4)]


def test_estimate_is_generous() -> None:
    assert estimate_tokens("") == 2
    assert estimate_tokens("hello world, this is text") >= 6


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        plan_batches(["a"], 0, None)


@given(
    st.lists(st.text(max_size=50), max_size=60),
    st.integers(min_value=1, max_value=10),
    st.one_of(st.none(), st.integers(min_value=1, max_value=60)),
)
def test_plan_covers_every_input_once_in_order(texts, batch_size, budget) -> None:
    batches = plan_batches(texts, batch_size, budget)
    covered = [i for s, e in batches for i in range(s, e)]
    assert covered == list(range(len(texts)))
    for s, e in batches:
        assert 1 <= e - s <= batch_size
        if budget is not None and e - s > 1:
            assert sum(estimate_tokens(t) for t in texts[s:e]) <= budget
