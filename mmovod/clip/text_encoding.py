"""CLIP text embeddings of many sentences (length-bucketed batches on the causal text tower), and
their per-class means.

CLIP's text transformer is causal and the sentence embedding is read at the end-of-text token, so
nothing after that token (the padding up to 77) can change it. Sentences are therefore tokenized
once (truncated to the context length like `clip.tokenize(..., truncate=True)`), sorted by token
length, and each batch is run only up to its longest sequence: the causal mask and the positional
embedding are sliced to that length and the pooled token is the same. Results equal full-context
`model.encode_text` up to float rounding (checked in tests/clip/test_text_encoding.py).

Text towers where that does not hold (no causal mask, a pad mask, an appended CLS token, or
last-token pooling) are encoded at full context length through `model.encode_text` instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from open_clip.transformer import TextTransformer, text_global_pool

from mmovod.clip.factory import ClipBundle

log = logging.getLogger(__name__)

EXACT_POOLS = ("argmax", "eos")
# Sentences per forward pass when not given: large batches feed a GPU; on CPU, small ones keep the
# (batch x length x 4*width) MLP activations in cache, which measured faster (bench/bench_text_encoder.py).
DEFAULT_BATCH = {"cuda": 256, "cpu": 32}


def default_batch_size(device: torch.device) -> int:
    return DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])


@dataclass
class CausalTextTower:
    """The parts of an open_clip causal text tower needed to run it on a prefix of the context."""

    token_embedding: torch.nn.Module
    positional_embedding: torch.Tensor
    transformer: torch.nn.Module
    attn_mask: torch.Tensor
    ln_final: torch.nn.Module
    text_projection: torch.Tensor | torch.nn.Module | None
    pool_type: str
    eos_id: int | None

    def needed_lengths(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per row, how many leading tokens determine the embedding (up to and including the pooled token)."""
        if self.pool_type == "argmax":
            return tokens.argmax(dim=-1) + 1
        return (tokens == self.eos_id).int().argmax(dim=-1) + 1

    def encode_prefix(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings `(B, D)` of token rows `(B, L)` with L <= context length, as encode_text pools them."""
        length = tokens.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast_dtype)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        if self.text_projection is None:
            return x
        if isinstance(self.text_projection, torch.nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection


def _is_causal(mask: torch.Tensor | None) -> bool:
    if mask is None or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isneginf(mask), upper)) and not bool(mask[~upper].any())


def causal_text_tower(model: torch.nn.Module) -> CausalTextTower | None:
    """The causal text tower of an open_clip CLIP / CustomTextCLIP, or None when prefix encoding is not exact."""
    text = getattr(model, "text", None)
    if isinstance(text, TextTransformer):
        if text.cls_emb is not None or text.use_pad_mask:
            return None
        src, pool_type, eos_id = text, text.pool_type, getattr(text, "eos_id", None)
    elif isinstance(getattr(model, "transformer", None), torch.nn.Module) and hasattr(model, "token_embedding"):
        src, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
    else:
        return None
    if pool_type not in EXACT_POOLS or (pool_type == "eos" and eos_id is None) or not _is_causal(src.attn_mask):
        return None
    return CausalTextTower(
        token_embedding=src.token_embedding,
        positional_embedding=src.positional_embedding,
        transformer=src.transformer,
        attn_mask=src.attn_mask,
        ln_final=src.ln_final,
        text_projection=src.text_projection,
        pool_type=pool_type,
        eos_id=eos_id,
    )


def tokenize(bundle: ClipBundle, sentences: Sequence[str]) -> torch.Tensor:
    """Token ids `(N, context_length)` int64 on CPU; longer sentences are truncated, keeping end-of-text last."""
    if bundle.tokenizer is None:
        raise ValueError("this CLIP was loaded with its image tower only (tower='image'): load it with its text tower")
    return bundle.tokenizer(list(sentences))


def encode_sentences(
    bundle: ClipBundle,
    sentences: Sequence[str],
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    bucketed: bool = True,
) -> np.ndarray:
    """CLIP text embeddings of `sentences`: float32 `(N, D)`, NOT normalised, row i for sentence i.

    With `bucketed` (the default) sentences are sorted by token length and each batch of
    `batch_size` (None: `default_batch_size` of the bundle's device) runs only up to its longest
    sequence (exact for causal towers, see the module docstring); otherwise every batch runs at full
    context length. Runs under inference mode and the
    bundle's autocast (fp16 on CUDA, fp32 on CPU). `progress(n)` is called after each batch with the
    number of sentences it held.
    """
    if batch_size is None:
        batch_size = default_batch_size(bundle.device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokens = tokenize(bundle, sentences)
    out = np.empty((len(sentences), bundle.embed_dim), dtype=np.float32)
    if not len(sentences):
        return out
    tower = causal_text_tower(bundle.model) if bucketed else None
    if tower is None:
        if bucketed:
            log.info("text tower is not causal with end-of-text pooling: encoding at full context length")
        order = np.arange(len(sentences))
        lengths = np.full(len(sentences), tokens.shape[1])
    else:
        lengths = tower.needed_lengths(tokens).numpy()
        order = np.argsort(-lengths, kind="stable")
    with torch.inference_mode(), bundle.autocast():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = tokens[torch.from_numpy(rows)]
            if tower is None:
                emb = bundle.model.encode_text(batch.to(bundle.device))
            else:
                emb = tower.encode_prefix(batch[:, :int(lengths[rows].max())].to(bundle.device))
            out[rows] = emb.float().cpu().numpy()
            if progress is not None:
                progress(len(rows))
    return out


def class_means(embeddings: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Mean of consecutive row groups: `embeddings` (sum(counts), D) -> float32 (len(counts), D).

    Every count must be >= 1 (a class without sentences has no mean).
    """
    if any(c < 1 for c in counts) or sum(counts) != len(embeddings):
        raise ValueError("counts must be positive and sum to the number of embeddings")
    bounds = np.cumsum([0, *counts])
    return np.stack([embeddings[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)


def encode_class_means(
    bundle: ClipBundle,
    sentences_per_class: Sequence[Sequence[str]],
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per class, the mean CLIP text embedding of its sentences: float32 `(C, D)`, NOT normalised.

    All sentences of all classes are encoded together in length-bucketed batches (see
    `encode_sentences`), then averaged per class; each class needs at least one sentence.
    """
    flat = [s for group in sentences_per_class for s in group]
    embeddings = encode_sentences(bundle, flat, batch_size, progress)
    return class_means(embeddings, [len(g) for g in sentences_per_class])


def max_relative_difference(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """max |a - b| / max |b| over all entries (b is the reference)."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    return float(np.abs(a64 - b64).max() / np.abs(b64).max())
