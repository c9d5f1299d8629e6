"""nano-vectordb and LightRAG embedding functions backed by your own vLLM server."""
