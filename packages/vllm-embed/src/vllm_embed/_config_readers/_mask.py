"""The secret masker's old address: it lives in :mod:`vllm_embed._secrets`."""

from vllm_embed._secrets import is_secret_key, mask, mask_tree, mask_url

__all__ = ["is_secret_key", "mask", "mask_tree", "mask_url"]
