"""Prompt tokenizers, built with `tokenizers` alone so the API can count tokens without torch.

`tiny-random` uses a byte-level tokenizer built here (one token per UTF-8 byte plus `</s>`).
Real versions use the checkpoint's own `tokenizer/tokenizer.json` from the local Hugging Face cache.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

from shared.catalog import MODEL_VERSIONS

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


@lru_cache
def byte_tokenizer() -> Tokenizer:
    """UMT5-shaped special tokens (pad=0, eos=1, unk=2) over the 256 byte-level symbols."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {PAD: 0, EOS: 1, UNK: 2} | {ch: i + 3 for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return tok


def _cached_tokenizer_json(hf_repo: str, hf_home: Path | None) -> Path | None:
    root = (hf_home or Path.home() / ".cache" / "huggingface") / "hub"
    snapshots = root / ("models--" + hf_repo.replace("/", "--")) / "snapshots"
    found = sorted(snapshots.glob("*/tokenizer/tokenizer.json")) if snapshots.is_dir() else []
    return found[-1] if found else None


@lru_cache
def tokenizer_for(model_version: str, hf_home: Path | None = None) -> Tokenizer | None:
    """The version's tokenizer, or None when its files are not in the local cache."""
    spec = MODEL_VERSIONS[model_version]
    if spec.hf_repo is None:
        return byte_tokenizer()
    path = _cached_tokenizer_json(spec.hf_repo, hf_home)
    return Tokenizer.from_file(str(path)) if path else None


def count_tokens(text: str, model_version: str, hf_home: Path | None = None) -> int:
    """Tokens the text encoder sees, `</s>` included.

    Without the real tokenizer at hand, the UTF-8 byte count plus one is used: every SentencePiece
    token covers at least one byte, so it is an upper bound and never lets a too-long prompt through.
    """
    tok = tokenizer_for(model_version, hf_home)
    if tok is None:
        return len(text.encode()) + 1
    return len(tok.encode(text).ids)
