"""Embed Ray Data datasets across a fleet of vLLM servers, via vllm-embed.

>>> import ray.data
>>> from vllm_embed_ray import embed_dataset
>>> ds = ray.data.read_parquet("s3://bucket/chunks/")
>>> out = embed_dataset(ds, "text", base_url=["http://a:8000/v1", "http://b:8000/v1"],
...                     concurrency=8)
>>> out.write_parquet("s3://bucket/vectors/")
"""

from vllm_embed_ray._embed import DEFAULT_BATCH_SIZE, embed_dataset

__version__ = "0.1.0"

__all__ = ["DEFAULT_BATCH_SIZE", "__version__", "embed_dataset"]
