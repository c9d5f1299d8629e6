"""vllm-embed's own test support (on pytest's pythonpath via the root pyproject).

- :mod:`.vllm`: session fixtures around :mod:`vllm_embed.server` (a live vLLM CPU
  server) and reference vectors computed with sentence-transformers.
- :mod:`.corpus`: the demo and contract corpora.
- :mod:`.proxy`: a TCP proxy that can be cut mid-run ("the server went away").
- :mod:`.fake_server`: a fast fake OpenAI-compatible embedding server.
"""
