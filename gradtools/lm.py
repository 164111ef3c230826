"""The small causal-transformer family shared by the studies that train language models.

Models are `transformers` GPT-NeoX models (the class of the Pythia suites) with
tiny configs, so a checkpoint trained here is ``save_pretrained`` output and the
same analysis code runs on a real suite loaded with
``from_pretrained(name, revision="step1000")``.

Batches are dicts ``{"input_ids": (n, S), "labels": (n, S)}`` in the
`transformers` convention: ``labels[:, t]`` is the token predicted from
positions ``< t`` (the model shifts), and ``-100`` marks positions without loss.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM

IGNORE = -100


def tiny_config(vocab_size: int, *, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                d_mlp: int | None = None, context: int = 64) -> GPTNeoXConfig:
    """A GPT-NeoX config: pre-LayerNorm, rotary positions, untied unembedding, no dropout."""
    return GPTNeoXConfig(
        vocab_size=vocab_size, hidden_size=d_model, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, intermediate_size=d_mlp or 4 * d_model,
        max_position_embeddings=context, hidden_act="gelu", use_parallel_residual=False,
        attention_dropout=0.0, hidden_dropout=0.0, tie_word_embeddings=False, use_cache=False,
        bos_token_id=0, eos_token_id=0,
    )


def tiny_causal_lm(vocab_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                   **config) -> GPTNeoXForCausalLM:
    """A freshly initialised tiny GPT-NeoX (``config``: the keywords of :func:`tiny_config`), in eval mode.

    """
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(tiny_config(vocab_size, **config))
    return model.to(dtype).eval()


def load_causal_lm(name_or_path: str | Path, revision: str | None = None, *,
                   local_files_only: bool = True, cache_dir: str | Path | None = None,
                   dtype: torch.dtype = torch.float32) -> nn.Module:
    """Any causal LM by hub name or folder, at a revision (e.g. Pythia's ``"step1000"``), in eval mode.

    ``local_files_only=True`` by default: nothing is downloaded unless asked
    for; a hub name then resolves through the local Hugging Face cache
    (``cache_dir``, default ``$HF_HUB_CACHE``), where ``refs/<revision>`` names
    the snapshot.
    """
    if str(name_or_path).startswith(("/", ".", "~")) and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"no checkpoint folder at {name_or_path}: train or copy one there first")
    model = AutoModelForCausalLM.from_pretrained(
        str(name_or_path), revision=revision, local_files_only=local_files_only,
        cache_dir=None if cache_dir is None else str(cache_dir), dtype=dtype)
    return model.eval()


def token_losses(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Per-token cross-entropy (n, S-1) of next-token prediction; 0 where labels are -100."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    labels = batch["labels"][:, 1:]
    logits = logits[:, :-1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="none")
    return loss.reshape(labels.shape)


def sequence_losses(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Per-example loss (n,): the sum of the example's token losses (a ``loss_fn`` for gradient_gram)."""
    return token_losses(model, batch).sum(dim=1)
