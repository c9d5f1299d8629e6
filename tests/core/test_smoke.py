import numpy as np

from _vllm_fakes import expected
from vllm_embed import EmbeddingClient


def test_smoke(server):
    with EmbeddingClient(server.url, batch_size=2) as c:
        texts = ["a", "b c", "", "d"]
        out = c.embed(texts)
        np.testing.assert_allclose(out, expected(texts, 8), rtol=1e-6)
        print(c.stats)
