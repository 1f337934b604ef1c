"""An independent NumPy (float64) BERT forward pass over a Hugging Face safetensors file.

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


def bert_sequence_output(weights, config, token_ids, padding_mask):
    """Final hidden states ``[B, T, hidden]`` of HF ``BertModel`` (exact GELU)."""
    w, eps = weights, config.get("layer_norm_eps", 1e-12)
    gamma = "weight" if "embeddings.LayerNorm.weight" in w else "gamma"
    beta = "bias" if gamma == "weight" else "beta"
    batch, length = token_ids.shape
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    x = w["embeddings.word_embeddings.weight"][token_ids]
    x = x + w["embeddings.position_embeddings.weight"][:length][None]
    x = x + w["embeddings.token_type_embeddings.weight"][0][None, None]
    x = _layer_norm(x, w[f"embeddings.LayerNorm.{gamma}"], w[f"embeddings.LayerNorm.{beta}"], eps)
    bias = np.where(padding_mask[:, None, None, :] > 0, 0.0, -1e9)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"

        def split(t):
            return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q = split(_dense(x, w, f"{p}.attention.self.query"))
        k = split(_dense(x, w, f"{p}.attention.self.key"))
        v = split(_dense(x, w, f"{p}.attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, heads * head_dim)
        attention = _dense(context, w, f"{p}.attention.output.dense")
        x = _layer_norm(x + attention, w[f"{p}.attention.output.LayerNorm.{gamma}"], w[f"{p}.attention.output.LayerNorm.{beta}"], eps)
        hidden = _dense(x, w, f"{p}.intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))
        x = _layer_norm(x + _dense(hidden, w, f"{p}.output.dense"), w[f"{p}.output.LayerNorm.{gamma}"], w[f"{p}.output.LayerNorm.{beta}"], eps)
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
