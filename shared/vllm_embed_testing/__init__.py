"""vllm-embed's own test support (on pytest's pythonpath via the root pyproject).

- :mod:`.vllm`: session fixtures around :mod:`vllm_embed.server` (a live vLLM CPU
  server) and reference vectors computed with sentence-transformers.
- :mod:`.corpus`: the demo and contract corpora.
- :mod:`.proxy`: a TCP proxy that can be cut mid-run ("the server went away").
- The project's ONE fake vLLM is :mod:`.fake_server` (its request handling answers like
  vLLM 0.32); every test double serves it:

  - :class:`.fake_server.FakeEmbeddingServer`: in its own process over real HTTP
    (benchmarks, transport tests, LightRAG);
  - :mod:`.respx_vllm`: in the test's process through respx, sockets off (``mount`` for
    adapter / migrate / CLI tests; ``FakeServer`` with request recording and per-request
    hooks for the core client's tests);
  - :mod:`.fake_vllm_package`: a stand-in ``vllm`` package for the launcher's tests
    (``python -m vllm.entrypoints.openai.api_server`` serving the fake).
- :mod:`.pytest_plugin`: ``clean_env`` and ``fake_vllm`` fixtures for suites that import them.
"""
