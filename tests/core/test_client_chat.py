"""embed_messages() and embed_images(): conversations on /v1/embeddings, images as
image_url parts (paths, bytes, PIL-like objects, URLs), the errors when the server cannot
take them (both twins, respx fake vLLM)."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest

from vllm_embed import InputNotSupportedError, InvalidInputError
from vllm_embed_testing.corpus import tiny_png
from vllm_embed_testing.fake_server import fake_chat_text, fake_vector
from vllm_embed_testing.respx_vllm import FakeServer

CONVERSATIONS = [
    [{"role": "user", "content": "What is late interaction?"}],
    [
        {"role": "system", "content": "Represent the document."},
        {"role": "user", "content": [{"type": "text", "text": "vLLM serves embeddings."}]},
    ],
]


def _want(conversations, dim: int = 8) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.stack([fake_vector(fake_chat_text(c), dim) for c in conversations])


def test_conversations_one_vector_each_in_order(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, chat_template=True)
    c = make_client(srv.url, model="fake-model", max_concurrency=2)
    out = c.embed_messages(CONVERSATIONS * 3)
    np.testing.assert_allclose(out, _want(CONVERSATIONS * 3), rtol=1e-6)
    assert all("messages" in body and "input" not in body for body in srv.embed_requests)
    assert c.embed_messages([]).shape == (0, 0)


def test_images_from_bytes_path_pil_and_url(router, make_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, chat_template=True, multimodal=True)
    c = make_client(srv.url, model="fake-model")
    png = tiny_png()
    path = tmp_path / "cat.png"
    path.write_bytes(png)

    class PILLike:  # what embed_images needs of a PIL image: save(fp, format=)
        def save(self, fp, format: str) -> None:  # type: ignore[no-untyped-def]
            assert format == "PNG"
            fp.write(png)

    url = "https://example.test/cat.png"
    out = c.embed_images([png, path, str(path), PILLike(), url], text="a cat")
    digest = hashlib.sha256(png).hexdigest()[:16]
    url_digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    want_same = fake_vector(f"user: <image:{digest}> a cat", 8)
    for row in out[:4]:  # the same image bytes, however given: the same vector
        np.testing.assert_allclose(row, want_same, rtol=1e-6)
    np.testing.assert_allclose(
        out[4], fake_vector(f"user: <image:{url_digest}> a cat", 8), rtol=1e-6
    )
    sent = srv.embed_requests[0]["messages"][0]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/png;base64,") and base64.b64decode(sent.split(",")[1]) == png


def test_no_chat_template_is_named(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model")
    with pytest.raises(InputNotSupportedError, match="--chat-template"):
        c.embed_messages(CONVERSATIONS[:1])


def test_image_on_a_text_model_is_named(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, chat_template=True)
    c = make_client(srv.url, model="fake-model")
    with pytest.raises(InputNotSupportedError, match="multimodal"):
        c.embed_images([tiny_png()])


def test_bad_inputs(router, make_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, chat_template=True, multimodal=True)
    c = make_client(srv.url, model="fake-model")
    with pytest.raises(InvalidInputError, match="not a file"):
        c.embed_images([tmp_path / "missing.png"])
    with pytest.raises(InvalidInputError, match="not PNG, JPEG"):
        c.embed_images([b"not an image"])
    with pytest.raises(InvalidInputError, match="'role' and 'content'"):
        c.embed_messages([[{"text": "hi"}]])
    with pytest.raises(InvalidInputError, match="wrap a single message"):
        c.embed_messages([{"role": "user", "content": "hi"}])
    assert srv.embed_requests == []


def test_conversations_and_images_go_through_the_cache(router, make_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, chat_template=True, multimodal=True)
    c = make_client(srv.url, model="fake-model", cache=str(tmp_path / "emb.sqlite"))
    first = c.embed_images([tiny_png(), tiny_png(grey=7)], text="a pixel")
    asked = len(srv.embed_requests)
    again = c.embed_images([tiny_png(), tiny_png(grey=7)], text="a pixel")
    np.testing.assert_array_equal(first, again)
    assert len(srv.embed_requests) == asked  # both from the cache: the image bytes are the key
    c.embed_images([tiny_png(grey=9)], text="a pixel")
    assert len(srv.embed_requests) == asked + 1  # other bytes: a miss
    # a conversation and the same words as plain text are different keys
    c.embed_messages([[{"role": "user", "content": "hello"}]])
    plain = c.embed(["hello"])
    np.testing.assert_allclose(plain[0], fake_vector("hello", 8), rtol=1e-6)
    assert c.stats.cache_hits >= 2
