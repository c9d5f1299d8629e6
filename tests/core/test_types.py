"""Value types: Secret never shows itself; Timeout and RetryPolicy validate."""

from __future__ import annotations

import pickle

import pytest

from vllm_embed import RetryPolicy, Secret, Timeout


def test_secret_hides_its_value() -> None:
    s = Secret("sk-very-secret")
    assert "sk-very-secret" not in repr(s)
    assert "sk-very-secret" not in str(s)
    assert "sk-very-secret" not in f"{s!r} {s}"
    assert s.get() == "sk-very-secret"
    assert Secret(s).get() == "sk-very-secret"
    assert s == Secret("sk-very-secret")
    assert bool(Secret("")) is False


def test_secret_refuses_pickle() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("k"))


@pytest.mark.parametrize(
    ("value", "total", "connect"),
    [(None, 60.0, 5.0), (2.0, 2.0, 2.0), (30, 30.0, 5.0), (Timeout(10, 1), 10, 1)],
)
def test_timeout_coerce(value: object, total: float, connect: float) -> None:
    t = Timeout.coerce(value)  # type: ignore[arg-type]
    assert (t.total, t.connect) == (total, connect)


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_timeout_rejects_nonsense(bad: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Timeout.coerce(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"initial_delay": -1}, {"jitter": -0.1}, {"total_timeout": 0}],
)
def test_retry_policy_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_policy_none_means_one_attempt() -> None:
    assert RetryPolicy.none().max_attempts == 1


def test_secret_copies_are_the_same_secret() -> None:
    import copy

    s = Secret("k")
    assert copy.copy(s) is s and copy.deepcopy({"key": s})["key"] is s
