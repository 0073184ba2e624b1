"""Prompt token counts without torch: byte-level for `tiny-random`, an upper bound without the real
tokenizer at hand."""

from __future__ import annotations

from pathlib import Path

from shared.tokenizer import count_tokens, tokenizer_for


def test_tiny_random_counts_one_token_per_byte_plus_eos() -> None:
    assert count_tokens("", "tiny-random") == 1
    assert count_tokens("abc", "tiny-random") == 4
    assert count_tokens("é", "tiny-random") == 3  # two UTF-8 bytes
    tok = tokenizer_for("tiny-random")
    assert tok is not None and tok.encode("a kite").ids[-1] == tok.token_to_id("</s>") == 1


def test_without_the_real_tokenizer_the_byte_count_bounds_it(tmp_path: Path) -> None:
    # An empty Hugging Face cache: the real version's tokenizer is not at hand.
    assert tokenizer_for("df-1-3b-540p-diffusers", tmp_path) is None
    assert count_tokens("a red kite", "df-1-3b-540p-diffusers", tmp_path) == len(b"a red kite") + 1
    assert count_tokens("ü" * 10, "df-1-3b-540p-diffusers", tmp_path) == 21
