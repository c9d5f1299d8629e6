"""Texts for the demo and the contract tests (deterministic, no randomness).

- :data:`DEMO_CORPUS` / :data:`DEMO_QUERIES`: 40 sentences on 8 topics and queries
  whose best answer's topic is known, so the demo can check itself.
- :data:`EDGE_TEXTS` and :func:`mixed_texts`: short, long, CJK, emoji and empty
  strings, as users send them.
- :func:`thousand_word_text`: longer than any small model's context.
- :func:`text_of_exact_tokens`: a text of exactly N tokens for a given tokenizer,
  built by asking the server's ``/tokenize`` (see :func:`tokenize_counter`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEMO_CORPUS",
    "DEMO_QUERIES",
    "EDGE_TEXTS",
    "DemoQuery",
    "mixed_texts",
    "text_of_exact_tokens",
    "thousand_word_text",
    "tiny_png",
    "tokenize_counter",
]

# (topic, sentence): 8 topics x 5 sentences.
DEMO_CORPUS: tuple[tuple[str, str], ...] = (
    ("cooking", "Simmer the tomato sauce for twenty minutes before adding fresh basil."),
    ("cooking", "A sourdough starter needs flour, water and a few days of patience."),
    ("cooking", "Sear the steak in a very hot cast-iron pan, then let it rest."),
    ("cooking", "Risotto wants warm stock added one ladle at a time while stirring."),
    ("cooking", "Toast whole spices in a dry pan to release their aroma before grinding."),
    ("astronomy", "Jupiter is the largest planet in the solar system."),
    ("astronomy", "A light-year is the distance light travels in one year."),
    ("astronomy", "The Andromeda galaxy is on a collision course with the Milky Way."),
    ("astronomy", "Neutron stars are the collapsed cores of massive stars."),
    ("astronomy", "Saturn's rings are made mostly of ice particles and rock."),
    ("programming", "Python lists are dynamic arrays that grow as you append items."),
    ("programming", "A hash map gives average constant-time lookups by key."),
    ("programming", "Unit tests should fail when the behaviour they check is broken."),
    ("programming", "Use a context manager so the file is closed even if an error occurs."),
    ("programming", "Git branches let you work on a feature without touching main."),
    ("gardening", "Tomato plants need full sun and regular, deep watering."),
    ("gardening", "Prune roses in late winter, just before new growth starts."),
    ("gardening", "Compost improves soil structure and feeds earthworms."),
    ("gardening", "Plant garlic cloves in autumn for a harvest the next summer."),
    ("gardening", "Mulch keeps moisture in the soil and suppresses weeds."),
    ("finance", "An index fund tracks a market index at a low management fee."),
    ("finance", "Compound interest makes savings grow faster over long periods."),
    ("finance", "Diversification spreads investment risk across many assets."),
    ("finance", "Inflation reduces the purchasing power of money over time."),
    ("finance", "A mortgage is a loan secured by the property it buys."),
    ("sports", "The marathon distance is a little over forty-two kilometres."),
    ("sports", "A hat-trick means one player scored three goals in a single match."),
    ("sports", "Tennis players change ends after every odd-numbered game."),
    ("sports", "Cyclists ride in a peloton to save energy by drafting."),
    ("sports", "Swimmers shave fractions of a second with better turns at the wall."),
    ("health", "Adults should aim for seven to nine hours of sleep each night."),
    ("health", "Regular aerobic exercise strengthens the heart and lungs."),
    ("health", "Drinking enough water helps regulate body temperature."),
    ("health", "Vaccines train the immune system to recognise a pathogen."),
    ("health", "Stretching after a workout can reduce muscle stiffness."),
    ("travel", "Book train tickets early for the cheapest fares across Europe."),
    ("travel", "A valid passport is required for most international flights."),
    ("travel", "Pack light so you can carry your bag onto the plane."),
    ("travel", "Jet lag is worse when flying east across many time zones."),
    ("travel", "Travel insurance covers cancelled trips and medical emergencies."),
)


@dataclass(frozen=True)
class DemoQuery:
    """A question and the topic its best answer belongs to."""

    text: str
    topic: str


DEMO_QUERIES: tuple[DemoQuery, ...] = (
    DemoQuery("How do I make a good pasta sauce?", "cooking"),
    DemoQuery("Which planet is the biggest?", "astronomy"),
    DemoQuery("How much rest does a grown-up need at night?", "health"),
    DemoQuery("What should I do to my rose bushes before spring?", "gardening"),
    DemoQuery("How can my money grow over decades?", "finance"),
)

EDGE_TEXTS: tuple[str, ...] = (
    "",
    "a",
    "Hello, world!",
    "向量嵌入把文本变成数字。",
    "日本語のテキストも埋め込めます。",
    "한국어 문장도 마찬가지입니다.",
    "🚀🔥 emoji-only? 🤖✨👍🏽",
    "👨‍👩‍👧‍👦 family emoji with zero-width joiners",
    "   leading and trailing spaces   ",
    "line one\nline two\ttabbed",
    "Ünïcödé àccents çà et là — and “smart quotes”.",
)

_LOREM = [
    "vector",
    "search",
    "engines",
    "compare",
    "dense",
    "embeddings",
    "of",
    "text",
    "so",
    "that",
    "similar",
    "meaning",
    "lands",
    "close",
    "together",
    "even",
    "when",
    "the",
    "words",
    "differ",
    "entirely",
    "between",
    "two",
    "passages",
]


def thousand_word_text(words: int = 1000) -> str:
    """An English text of exactly ``words`` words (far over 256 tokens)."""
    return " ".join(_LOREM[i % len(_LOREM)] for i in range(words))


def mixed_texts(n: int) -> list[str]:
    """``n`` texts cycling through short, long (40-250 words), CJK, emoji and empty
    strings; each non-empty text carries its index so order can be checked."""
    out: list[str] = []
    for i in range(n):
        kind = i % 7
        if kind == 0:
            out.append(f"short text number {i}")
        elif kind == 1:
            # 40 to 250 words: most fit the 256-token context, some are cut.
            out.append(thousand_word_text(40 + (i * 37) % 211) + f" ({i})")
        elif kind == 2:
            out.append(f"第{i}号文档：向量数据库用于语义搜索。")
        elif kind == 3:
            out.append(f"🚀 launch #{i} 🔥🤖")
        elif kind == 4:
            out.append("")
        elif kind == 5:
            out.append(EDGE_TEXTS[i % len(EDGE_TEXTS)] + f" {i}")
        else:
            out.append(f"{DEMO_CORPUS[i % len(DEMO_CORPUS)][1]} #{i}")
    return out


def tokenize_counter(root_url: str, model: str, timeout: float = 30.0) -> Callable[[str], int]:
    """A function that counts a text's tokens (with special tokens) via ``/tokenize``.

    ``root_url`` is the server root (no ``/v1``); /tokenize is not key-protected.
    """
    import httpx

    def count(text: str) -> int:
        resp = httpx.post(
            f"{root_url}/tokenize",
            json={"model": model, "prompt": text, "add_special_tokens": True},
            timeout=timeout,
            trust_env=False,
        )
        resp.raise_for_status()
        return int(resp.json()["count"])

    return count


def text_of_exact_tokens(count_tokens: Callable[[str], int], n: int) -> str:
    """A text that ``count_tokens`` says is exactly ``n`` tokens long.

    Starts from a guess of one token per word and adjusts word by word; raises
    ``ValueError`` if the tokenizer never lands on ``n`` (it always does for
    word-piece tokenizers and this word).
    """
    word = "hello"
    words = max(1, n - 2)
    for _ in range(64):
        text = " ".join([word] * words)
        got = count_tokens(text)
        if got == n:
            return text
        words += 1 if got < n else -1
        if words < 1:
            break
    raise ValueError(f"could not build a text of exactly {n} tokens")


def tiny_png(width: int = 2, grey: int = 128) -> bytes:
    """The bytes of a real PNG file: ``width`` x 1 pixels of one grey (image-input tests)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    pixels = b"\x00" + bytes([grey] * width)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )
