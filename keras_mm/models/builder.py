"""``build_model``: names and kwargs -> a ``MultimodalModel``."""

from keras_mm.config import ModelConfig
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.registry import ENCODERS, FUSIONS, HEADS, validate_kwargs


def instantiate(registry, spec, field, provided=None, default_name=None):
    """Build a registered component from ``{"name": ..., **kwargs}``, validating kwargs against ``field``."""
    spec = dict(spec)
    if default_name is not None:
        # The "name" key selects the component; the Keras layer is named after its role.
        provided = {**(provided or {}), "name": default_name}
    cls = registry.get(spec.pop("name"), field=field)
    provided = provided or {}
    validate_kwargs(cls, spec, field, provided_by_builder=tuple(provided))
    return cls(**{**spec, **provided})


def build_model(
    encoders=None,
    fusion="concat",
    head="classification",
    num_classes=None,
    *,
    return_extras=False,
    modality_dropout=0.0,
    name="multimodal_model",
    config=None,
    preset=None,
):
    """Build a multimodal Keras model from registered components.

    Args:
        encoders: ``{feature_name: encoder}`` where an encoder is a registered
            name (``keras_mm.list_encoders()``) or ``{"name": ..., **kwargs}``.
            The feature's modality comes from its encoder.
        fusion: registered fusion name or dict (``keras_mm.list_fusions()``).
        head: registered head name or dict (``keras_mm.list_heads()``), or
            ``None`` to return the fused representation (an embedding model).
        num_classes: number of classes for ``classification``/``multilabel``.
        return_extras: also output the fusion's extras (``modality_weights``).
        modality_dropout: during training, drop each modality of each sample
            with this probability (never all of them), so the model copes with
            missing or corrupt inputs at serving time.
        name: model name.
        config: a :class:`ModelConfig` (or its dict) instead of the arguments
            above; may also be passed as the first positional argument.
        preset: a named recipe (``keras_mm.list_presets()``); the other
            arguments given override it (``encoders`` merge per feature).

    Returns:
        a :class:`MultimodalModel`; ``model.preprocessor`` maps raw inputs.

    Raises:
        ValueError: naming the field and the allowed values for unknown
            components, unknown or missing arguments and absent checkpoints.

    Example:
        >>> model = keras_mm.build_model(
        ...     encoders={"image": "mobilenet_v2",
        ...               "text": {"name": "bert", "checkpoint": "/models/minilm"},
        ...               "audio": "mfcc_cnn"},
        ...     fusion="attention", head="classification", num_classes=10)
        >>> model.compile()
    """
    if preset is not None:
        from keras_mm.presets import preset_config

        overrides = {"encoders": encoders, "num_classes": num_classes, "return_extras": return_extras or None,
                     "modality_dropout": modality_dropout or None}
        if fusion != "concat":
            overrides["fusion"] = fusion
        if head != "classification":
            overrides["head"] = head
        if name != "multimodal_model":
            overrides["name"] = name
        config = ModelConfig.from_dict(preset_config(preset, **overrides))
        encoders = None
    if isinstance(encoders, (ModelConfig, dict)) and config is None and (
        isinstance(encoders, ModelConfig) or "encoders" in encoders
    ):
        config, encoders = encoders, None
    if config is not None:
        if encoders is not None:
            raise ValueError("Pass either config= or encoders=/fusion=/head=, not both.")
        config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    else:
        if encoders is None:
            raise ValueError("build_model needs encoders={feature: encoder_name_or_dict} or config=ModelConfig(...).")
        config = ModelConfig(
            encoders=encoders,
            fusion=fusion,
            head=head,
            num_classes=num_classes,
            return_extras=return_extras,
            modality_dropout=modality_dropout,
            name=name,
        )

    built_encoders = {
        feature: instantiate(ENCODERS, spec, f"encoders[{feature!r}]", default_name=f"{feature}_encoder")
        for feature, spec in config.encoders.items()
    }
    built_fusion = instantiate(FUSIONS, config.fusion, "fusion", default_name="fusion")

    built_head = None
    if config.head is not None:
        head_cls = HEADS.get(config.head["name"], field="head")
        provided = {}
        if head_cls.requires_num_classes:
            num = config.head.get("num_classes", config.num_classes)
            if num is None:
                raise ValueError(
                    f"num_classes is required for head={config.head['name']!r}: "
                    f"build_model(..., num_classes=N)."
                )
            provided["num_classes"] = num
        elif config.num_classes is not None and config.num_classes != 2 and config.head["name"] == "binary":
            raise ValueError(f"head='binary' predicts one probability; num_classes={config.num_classes} needs head='classification'.")
        spec = {k: v for k, v in config.head.items() if k != "num_classes"}
        built_head = instantiate(HEADS, spec, "head", provided=provided, default_name="head")

    model = MultimodalModel(
        built_encoders,
        built_fusion,
        built_head,
        return_extras=config.return_extras,
        modality_dropout=config.modality_dropout,
        name=config.name,
    )
    model.config = config
    return model
