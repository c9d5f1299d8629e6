"""Discovery: models, the model in use, max_model_len, dimension, version, health."""

from __future__ import annotations

import httpx
import pytest

from vllm_embed import APIConnectionError, ConfigValueError, ModelInfo, ModelNotFoundError
from vllm_embed_testing.respx_vllm import FakeServer


def test_models_lists_served_models_with_max_model_len(server, make_client) -> None:
    c = make_client(server.url)
    assert c.models() == [ModelInfo(id="fake-model", max_model_len=64, owned_by="vllm")]


def test_model_is_discovered_once_when_the_server_serves_one(server, make_client) -> None:
    c = make_client(server.url)
    assert c.model_name() == "fake-model"
    c.embed(["a"])
    c.embed(["b"])
    assert server.models_calls == 1
    assert server.embed_requests[0]["model"] == "fake-model"


def test_several_models_and_no_model_given(router, make_client) -> None:
    srv = FakeServer(router, models=["bge", "e5"])
    c = make_client(srv.url)
    with pytest.raises(ConfigValueError, match=r"serves several: bge, e5\. Pass model="):
        c.embed(["a"])


def test_max_model_len(router, make_client) -> None:
    srv = FakeServer(router, max_model_len=8192)
    c = make_client(srv.url, model="fake-model")
    assert c.max_model_len() == 8192
    assert c.max_model_len() == 8192
    assert srv.models_calls == 1


def test_max_model_len_unknown_on_non_vllm_servers(router, make_client) -> None:
    srv = FakeServer(router, max_model_len=None)
    c = make_client(srv.url, model="fake-model")
    assert c.max_model_len() is None
    c.embed(["a"])
    assert "truncate_prompt_tokens" not in srv.embed_requests[0]


def test_max_model_len_when_models_route_is_missing(router, make_client) -> None:
    router.get("http://tei.test/v1/models").mock(return_value=httpx.Response(404))
    c = make_client("http://tei.test/v1", model="bge")
    assert c.max_model_len() is None


def test_model_not_found_lists_served_models(server, make_client) -> None:
    c = make_client(server.url, model="nope")
    with pytest.raises(ModelNotFoundError) as info:
        c.embed(["a"])
    err = info.value
    assert err.available == ["fake-model"]
    assert err.status_code == 404
    assert "'nope'" in str(err) and "Served models: fake-model" in str(err)


def test_version_and_health(server, make_client) -> None:
    c = make_client(server.url)
    assert c.version() == "0.32.0"
    assert c.health() is True


def test_version_missing_and_health_down(router, make_client) -> None:
    router.get("http://tei.test/version").mock(return_value=httpx.Response(404))
    router.get("http://tei.test/health").mock(return_value=httpx.Response(503))
    c = make_client("http://tei.test/v1")
    assert c.version() is None
    assert c.health() is False


def test_health_never_raises(router, make_client) -> None:
    router.route(host="down.test").mock(side_effect=httpx.ConnectError("refused"))
    c = make_client("http://down.test/v1")
    assert c.health() is False
    with pytest.raises(APIConnectionError, match=r"down\.test"):
        c.version()
