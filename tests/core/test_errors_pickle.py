"""Every vllm-embed error crosses a process boundary intact (Ray workers pickle them)."""

from __future__ import annotations

import pickle

import pytest

from vllm_embed import _errors
from vllm_embed._errors import (
    ContextLengthError,
    InvalidRowError,
    ModelNotFoundError,
    ServerError,
    VLLMEmbedError,
)


@pytest.mark.parametrize("name", _errors.__all__)
def test_every_error_class_pickles(name: str) -> None:
    cls = getattr(_errors, name)
    kwargs = {"status_code": 500} if issubclass(cls, _errors.APIStatusError) else {}
    error = cls("what happened; what to do", **kwargs)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert str(again) == str(error)
    assert isinstance(again, VLLMEmbedError)


def test_keyword_attributes_survive_pickling() -> None:
    server = pickle.loads(
        pickle.dumps(ServerError("boom", url="http://h/v1", status_code=503, body={"a": 1}))
    )
    assert (server.status_code, server.url, server.body) == (503, "http://h/v1", {"a": 1})
    ctx = pickle.loads(pickle.dumps(ContextLengthError("long", max_model_len=512, input_index=3)))
    assert (ctx.max_model_len, ctx.input_index) == (512, 3)
    missing = pickle.loads(pickle.dumps(ModelNotFoundError("no", available=["m"])))
    assert missing.available == ["m"]
    no_text = pickle.loads(pickle.dumps(_errors.MissingTextError("no text", ids=["a", "b"])))
    assert no_text.ids == ["a", "b"]
    row = pickle.loads(
        pickle.dumps(InvalidRowError("bad", row={"id": 7}, column="text", location="f.jsonl:8"))
    )
    assert (row.row, row.column, row.location) == ({"id": 7}, "text", "f.jsonl:8")
    assert isinstance(row, ValueError)
