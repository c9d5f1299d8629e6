"""Embeddings from your own vLLM (or any OpenAI-compatible) server."""
