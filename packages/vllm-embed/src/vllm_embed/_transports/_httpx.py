"""The httpx transports: everything goes, nothing is special-cased."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from vllm_embed._transports._base import Reply, Request

__all__ = ["AsyncHttpxTransport", "HttpxTransport"]


class HttpxTransport:
    """Requests through an ``httpx.Client`` the twin hands out (``client()``: it creates,
    pools and closes it; a caller's ``http_client=`` is used as it is)."""

    def __init__(self, client: Callable[[], httpx.Client], headers: Mapping[str, str]) -> None:
        self._client = client
        self._headers = dict(headers)

    def send(self, request: Request) -> Reply:
        resp = self._client().request(
            request.method, request.url, content=request.body, headers=self._headers
        )
        return Reply(resp.status_code, resp.headers, resp.content)

    def close(self) -> None:
        """Nothing to do: the twin owns the httpx client."""


class AsyncHttpxTransport:
    """Requests through the ``httpx.AsyncClient`` the async twin hands out."""

    def __init__(self, client: Callable[[], httpx.AsyncClient], headers: Mapping[str, str]) -> None:
        self._client = client
        self._headers = dict(headers)

    async def send(self, request: Request) -> Reply:
        resp = await self._client().request(
            request.method, request.url, content=request.body, headers=self._headers
        )
        return Reply(resp.status_code, resp.headers, resp.content)

    async def aclose(self) -> None:
        """Nothing to do: the twin owns the httpx client."""
