"""Cache keys are pinned bytes: a cache written by an older release must stay readable.

The digests below were computed before the space refactor; a change here invalidates
every existing cache (a key-format change needs a new ``_KEY_FORMAT``, not a new value).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_embed import EmbeddingCache, EmbeddingClient
from vllm_embed._cache import text_keys

MODEL = "intfloat/e5-base-v2"
TEXTS = ["hello", "héllo wörld", ""]


def _client(tmp_path: Path, **kw: object) -> EmbeddingClient:
    cache_kw = {k: kw.pop(k) for k in ("dtype", "namespace") if k in kw}
    cache = EmbeddingCache(tmp_path / "c.sqlite", **cache_kw)  # type: ignore[arg-type]
    return EmbeddingClient("http://127.0.0.1:9/v1", cache=cache, **kw)  # type: ignore[arg-type]


# (client options, role, max_model_len); PINNED[i]: (settings digest, generation-2 space
# digest, the keys of TEXTS, the description ``cache stats`` shows)
OPTIONS: list[tuple[dict[str, object], str, int | None]] = [
    ({"instructions": "e5"}, "query", 512),
    ({"instructions": "e5"}, "document", 512),
    ({"instructions": None}, "raw", None),
    (
        {
            "instructions": "e5",
            "dimensions": 64,
            "client_side_dimensions": True,
            "normalize": True,
            "truncate": "error",
            "embed_dtype": "float16",
            "dtype": "float16",
            "namespace": "tenant-a",
        },
        "document",
        8192,
    ),
]


@pytest.mark.parametrize("index", range(len(OPTIONS)))
def test_cache_key_bytes_are_pinned(tmp_path: Path, index: int) -> None:
    options, role, max_len = OPTIONS[index]
    with _client(tmp_path, **dict(options)) as client:
        space = client._cache_space(role, MODEL, max_len)  # type: ignore[arg-type]
        got = (
            space.settings_digest().hex(),
            space.with_generation(2).digest().hex(),
            [k.hex() for k in text_keys(space.digest(), TEXTS)],
            space.describe(),
        )
    assert got == PINNED[index]


PINNED: list[tuple[str, str, list[str], str]] = [
    (
        "43cbf9653a59d803159ee6cb4f3e0b6a8ae9d76a7d95cd2e1cb9a540b8513572",
        "61c971ddd9866b2148a9ba46f1e5dd252720787b53056e36dad6d7338e660744",
        [
            "422295af2e0922be80f3496b6b4e71b26f2f578a8601adc2",
            "422295af2e0922be053b7a6e2282dc0e1c890a18cebcb8e2",
            "422295af2e0922be51ee7b995871500693961cdd2309a7b8",
        ],
        '{"dimensions": null, "generation": 0, "limit": 511, "model": "intfloat/e5-base-v2", '
        '"normalize": false, "role": "query", "storage_dtype": "float32", "transfer_dtype": '
        '"float32", "truncate": "end"}',
    ),
    (
        "43cbf9653a59d803159ee6cb4f3e0b6a8ae9d76a7d95cd2e1cb9a540b8513572",
        "fffb35c81251b7a90e49749e70d1f441e8d81b89562fab86fb5657aec3b97474",
        [
            "b6ac2b9c0529d188b9ac4d385d6163aa0ec59499788000c3",
            "b6ac2b9c0529d188e03090f82188775d9612f35ac2e9c4b2",
            "b6ac2b9c0529d18845b6a6c9bb3f00b33b295aa30ac64e3a",
        ],
        '{"dimensions": null, "generation": 0, "limit": 511, "model": "intfloat/e5-base-v2", '
        '"normalize": false, "role": "document", "storage_dtype": "float32", "transfer_dtype": '
        '"float32", "truncate": "end"}',
    ),
    (
        "0cc5d0989027ce69719de67baa57c5679f3165796453ebea2e44696e09bfe343",
        "f9ede4c0002233cb5b6c46b042d002de9aed30050b6fe18e0f286e9414b243d1",
        [
            "15b3cb0415c9f921e445804ef2ee50a12db983e7a076bbf7",
            "15b3cb0415c9f921e4e3bc1ac76f2a04162554cb80221665",
            "15b3cb0415c9f921f75a1f49e09315bdaba1aa0ddca7e9a4",
        ],
        '{"dimensions": null, "generation": 0, "limit": null, "model": "intfloat/e5-base-v2", '
        '"normalize": false, "role": "raw", "storage_dtype": "float32", "transfer_dtype": '
        '"float32", "truncate": "end"}',
    ),
    (
        "be6e019275e2bcfee5b80cc33151d5fed9a2017ad12839bf8d8781d454c06c12",
        "16d636743bb874b18ce9d691793fd1dec4957eeadafe2867f1bd63d06ad0cf63",
        [
            "16c043115fee2bdcd49c5be54a866cb47c6698754af68487",
            "16c043115fee2bdcc9ad5ae781377cd9ad01fab4dc96a9be",
            "16c043115fee2bdc44056b031c8c5d8c1cc67c72543e145f",
        ],
        '{"dimensions": 64, "generation": 0, "limit": 8191, "model": "intfloat/e5-base-v2", '
        '"normalize": true, "role": "document", "storage_dtype": "float16", "transfer_dtype": '
        '"float16", "truncate": "error"}',
    ),
]


def test_conversation_cache_key_bytes_are_pinned(tmp_path: Path) -> None:
    """``embed_messages``: the raw texts' settings in their own role, ``messages``."""
    with _client(tmp_path, instructions="e5", dimensions=32) as client:
        space = client._messages_space(MODEL)
        got = (
            space.settings_digest().hex(),
            space.digest().hex(),
            text_keys(space.digest(), ["hello"])[0].hex(),
            space.describe(),
        )
    assert got == (
        "1c4e63c2bd402cbefd5ac7b4466060dbb642d1faa1a0a59df8969113d3b4f636",
        "63fde840c293a0dd9f42922c503de5e75637df2a15446deae10e1abeb219406b",
        "63fde840c293a0ddb8051eb60f1d8680b0161581091acf76",
        '{"dimensions": 32, "generation": 0, "limit": null, "model": "intfloat/e5-base-v2", '
        '"normalize": false, "role": "messages", "storage_dtype": "float32", '
        '"transfer_dtype": "float32", "truncate": "end"}',
    )
