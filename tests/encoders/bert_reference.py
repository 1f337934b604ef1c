"""An independent NumPy (float64) forward pass of HF BERT, DistilBERT, ALBERT and XLM-RoBERTa over a safetensors file.

Written from the BERT paper / HF BertModel semantics, sharing no code with
keras-hub or keras_mm, to check our encoder's numbers.
"""

import json
import os

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf


def load_reference(path):
    weights = {k.removeprefix("bert."): v.astype(np.float64) for k, v in load_file(os.path.join(path, "model.safetensors")).items()}
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    return weights, config


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _dense(x, w, prefix):
    return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]


def _gelu(x, config):
    if config.get("hidden_act", "gelu") in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _attention(x, w, prefix, names, heads, bias):
    """Multi-head self-attention context ``[B, T, H]`` from the query/key/value Linear weights ``names``."""
    batch, length, hidden = x.shape
    head_dim = hidden // heads

    def split(t):
        return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

    q, k, v = (split(_dense(x, w, f"{prefix}.{n}")) for n in names)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)


def bert_sequence_output(weights, config, token_ids, padding_mask, position_ids=None):
    """Final hidden states ``[B, T, hidden]`` of HF ``BertModel`` (GELU from ``hidden_act``)."""
    w, eps = weights, config.get("layer_norm_eps", 1e-12)
    gamma = "weight" if "embeddings.LayerNorm.weight" in w else "gamma"
    beta = "bias" if gamma == "weight" else "beta"
    length = token_ids.shape[1]
    heads = config["num_attention_heads"]
    positions = np.arange(length)[None] if position_ids is None else position_ids
    x = w["embeddings.word_embeddings.weight"][token_ids]
    x = x + w["embeddings.position_embeddings.weight"][positions]
    x = x + w["embeddings.token_type_embeddings.weight"][0][None, None]
    x = _layer_norm(x, w[f"embeddings.LayerNorm.{gamma}"], w[f"embeddings.LayerNorm.{beta}"], eps)
    bias = np.where(padding_mask[:, None, None, :] > 0, 0.0, -1e9)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        context = _attention(x, w, f"{p}.attention.self", ("query", "key", "value"), heads, bias)
        attention = _dense(context, w, f"{p}.attention.output.dense")
        x = _layer_norm(x + attention, w[f"{p}.attention.output.LayerNorm.{gamma}"], w[f"{p}.attention.output.LayerNorm.{beta}"], eps)
        hidden = _gelu(_dense(x, w, f"{p}.intermediate.dense"), config)
        x = _layer_norm(x + _dense(hidden, w, f"{p}.output.dense"), w[f"{p}.output.LayerNorm.{gamma}"], w[f"{p}.output.LayerNorm.{beta}"], eps)
    return x


def xlm_roberta_sequence_output(weights, config, token_ids, padding_mask):
    """Final hidden states of HF ``XLMRobertaModel``: RoBERTa, i.e. BERT with fairseq position ids.

    Positions count non-padding tokens from ``pad_token_id + 1``; padding
    tokens take position ``pad_token_id``.
    """
    w = {k.removeprefix("roberta."): v for k, v in weights.items()}
    pad = config["pad_token_id"]
    not_pad = (token_ids != pad).astype(np.int64)
    position_ids = np.cumsum(not_pad, axis=1) * not_pad + pad
    return bert_sequence_output(w, config, token_ids, padding_mask, position_ids)


def albert_sequence_output(weights, config, token_ids, padding_mask):
    """Final hidden states of HF ``AlbertModel``: factorised embeddings projected to ``hidden_size``,
    then ``num_hidden_layers`` passes through ``num_hidden_groups`` shared groups of ``inner_group_num`` layers."""
    w = {k.removeprefix("albert."): v for k, v in weights.items()}
    eps = config.get("layer_norm_eps", 1e-12)
    length = token_ids.shape[1]
    x = w["embeddings.word_embeddings.weight"][token_ids] + w["embeddings.position_embeddings.weight"][:length][None]
    x = x + w["embeddings.token_type_embeddings.weight"][0][None, None]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    x = _dense(x, w, "encoder.embedding_hidden_mapping_in")
    bias = np.where(padding_mask[:, None, None, :] > 0, 0.0, -1e9)
    layers, groups = config["num_hidden_layers"], config["num_hidden_groups"]
    for i in range(layers):
        group = int(i / (layers / groups))
        for j in range(config["inner_group_num"]):
            p = f"encoder.albert_layer_groups.{group}.albert_layers.{j}"
            context = _attention(x, w, f"{p}.attention", ("query", "key", "value"), config["num_attention_heads"], bias)
            x = _layer_norm(x + _dense(context, w, f"{p}.attention.dense"), w[f"{p}.attention.LayerNorm.weight"], w[f"{p}.attention.LayerNorm.bias"], eps)
            hidden = _dense(_gelu(_dense(x, w, f"{p}.ffn"), config), w, f"{p}.ffn_output")
            x = _layer_norm(x + hidden, w[f"{p}.full_layer_layer_norm.weight"], w[f"{p}.full_layer_layer_norm.bias"], eps)
    return x


def distilbert_sequence_output(weights, config, token_ids, padding_mask):
    """Final hidden states ``[B, T, dim]`` of HF ``DistilBertModel`` (exact GELU, post-LayerNorm blocks)."""
    w = {k.removeprefix("distilbert."): v for k, v in weights.items()}
    batch, length = token_ids.shape
    heads = config["n_heads"]
    head_dim = config["dim"] // heads
    x = w["embeddings.word_embeddings.weight"][token_ids] + w["embeddings.position_embeddings.weight"][:length][None]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], 1e-12)
    bias = np.where(padding_mask[:, None, None, :] > 0, 0.0, -1e9)
    for i in range(config["n_layers"]):
        p = f"transformer.layer.{i}"

        def split(t):
            return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = (split(_dense(x, w, f"{p}.attention.{n}_lin")) for n in "qkv")
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        x = _layer_norm(x + _dense(context, w, f"{p}.attention.out_lin"), w[f"{p}.sa_layer_norm.weight"], w[f"{p}.sa_layer_norm.bias"], 1e-12)
        hidden = _dense(x, w, f"{p}.ffn.lin1")
        hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))
        x = _layer_norm(x + _dense(hidden, w, f"{p}.ffn.lin2"), w[f"{p}.output_layer_norm.weight"], w[f"{p}.output_layer_norm.bias"], 1e-12)
    return x
