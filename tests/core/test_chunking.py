"""Cutting long text: every piece fits, nothing is lost or changed, and the cuts fall at sentence ends."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from memos_mcp.core.text import chunk_spans

TEXTS = st.lists(st.sampled_from(["word", " ", "  ", "\n", "\r\n", ".", "! ", "Ünïcödé", "x" * 90, "日本語", "\t"]),
                 max_size=120).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, size=st.integers(101, 400))
def test_pieces_fit_and_with_the_whitespace_between_them_give_back_the_text(text: str, size: int) -> None:
    spans = chunk_spans(text, size)
    end = 0
    for start, stop in spans:
        piece = text[start:stop]
        assert 0 < len(piece) <= size and piece == piece.strip()
        assert start >= end and not text[end:start].strip()
        end = stop
    assert not text[end:].strip()
    assert "".join("".join(text[s:e].split()) for s, e in spans) == "".join(text.split())


def test_a_repeated_line_is_kept_every_time_and_cuts_fall_at_line_ends() -> None:
    text = "\n".join(["INFO heartbeat ok"] * 200 + ["ERROR disk full"])
    spans = chunk_spans(text, 1200)
    assert len(spans) > 1 and all(text[e:e + 1] in ("\n", "") for _, e in spans)
    assert sum(text[s:e].count("heartbeat") for s, e in spans) == 200
