"""Input validation and batch planning by count and by an estimated token budget.

Batches are contiguous slices of the caller's list, so results are put back in order by
writing each batch's vectors to ``out[start:end]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vllm_embed._errors import InvalidInputError

__all__ = ["estimate_tokens", "plan_batches", "validate_texts"]


def validate_texts(texts: object) -> list[str]:
    """Return ``texts`` as a list of str, or raise :class:`InvalidInputError` naming the index.

    A bare string is refused (it would be embedded character by character); empty strings
    are valid inputs.
    """
    if isinstance(texts, str | bytes):
        raise InvalidInputError(
            "embed() takes a list of strings, got a single string. "
            "Wrap it in a list (embed([text])) or use embed_query(text)."
        )
    if isinstance(texts, list):
        items: list[object] = texts
    elif isinstance(texts, Sequence | Iterable):
        items = list(texts)
    else:
        raise InvalidInputError(f"embed() takes a list of strings, got {type(texts).__name__}.")
    for i, text in enumerate(items):
        if type(text) is not str and not isinstance(text, str):
            what = "None" if text is None else f"a {type(text).__name__}"
            raise InvalidInputError(
                f"Input {i} is {what}, not a string. Every input must be a str "
                "(use '' for an empty text); convert or drop it before embedding."
            )
    return items  # type: ignore[return-value]  # every item was checked above


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous token estimate: one token per 3 characters + 2.

    Real tokenizers average about 4 characters per token on English; the margin keeps
    batches under a server's token limit for code and most other languages. It is only used
    to size batches, never to decide truncation.
    """
    return len(text) // 3 + 2


def plan_batches(
    texts: Sequence[str],
    batch_size: int,
    max_tokens: int | None,
    *,
    token_cap: int | None = None,
) -> list[tuple[int, int]]:
    """Split ``texts`` into ``[start, end)`` slices of at most ``batch_size`` inputs whose
    estimated tokens sum to at most ``max_tokens`` (an input larger than the budget gets a
    batch of its own). ``token_cap`` caps each input's estimate (inputs the server will
    truncate to ``token_cap`` tokens cost no more than that).
    """
    n = len(texts)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if max_tokens is not None and n:
        # When even batch_size copies of the longest text fit the budget, the budget never
        # splits a batch: skip the per-text loop (the common case of short texts).
        most = max(map(len, texts)) // 3 + 2
        if token_cap is not None and most > token_cap:
            most = token_cap
        if most * batch_size <= max_tokens:
            max_tokens = None
    if max_tokens is None:
        return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    batches: list[tuple[int, int]] = []
    start = 0
    budget = 0
    for i, text in enumerate(texts):
        cost = len(text) // 3 + 2
        if token_cap is not None and cost > token_cap:
            cost = token_cap
        if i > start and (i - start >= batch_size or budget + cost > max_tokens):
            batches.append((start, i))
            start, budget = i, 0
        budget += cost
    if start < n:
        batches.append((start, n))
    return batches
