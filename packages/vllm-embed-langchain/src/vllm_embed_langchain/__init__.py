"""LangChain embeddings backed by your own vLLM server, via vllm-embed."""
