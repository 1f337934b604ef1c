"""``build_model``: names and kwargs -> a ``MultimodalModel``."""

import dataclasses

from keras_mm.config import ModelConfig
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.presets import preset_config
from keras_mm.registry import ENCODERS, FUSIONS, HEADS, constructor_arguments, validate_kwargs


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


class _NotGiven:
    """The default of every ``build_model`` field argument: tells "left out" from any value, 0.0/False/None included."""

    def __repr__(self):
        return "<not given>"


NOT_GIVEN = _NotGiven()
# build_model's field arguments are ModelConfig's fields; their defaults live in ModelConfig only.
_FIELDS = tuple(field.name for field in dataclasses.fields(ModelConfig))


def build_model(
    encoders=NOT_GIVEN,
    fusion=NOT_GIVEN,
    head=NOT_GIVEN,
    num_classes=NOT_GIVEN,
    *,
    return_extras=NOT_GIVEN,
    modality_dropout=NOT_GIVEN,
    name=NOT_GIVEN,
    class_names=NOT_GIVEN,
    auxiliary_heads=NOT_GIVEN,
    feature_normalization=NOT_GIVEN,
    config=None,
    preset=None,
):
    """Build a multimodal Keras model from registered components.

    The arguments from ``encoders`` to ``name`` are the fields of
    :class:`ModelConfig`; those left out take its defaults (or the preset's).

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
        class_names: names of the classes in id order (``num_classes``
            defaults to their number); the head keeps them, so they survive
            ``.keras`` save/load and label ``evaluate`` and the SavedModel.
        auxiliary_heads: add a unimodal copy of the head on each feature's
            encoder output; they appear as ``aux_<feature>`` in
            ``model.extras_model()`` (not in the serving signature) and are
            what the balance methods of :func:`keras_mm.train` train. With a
            ``classification`` head the model's output is then a
            :class:`keras_mm.layers.HeadCombination` of the fused head and
            these heads: the fused head alone as built, weights fitted on the
            validation set by :func:`keras_mm.train` (``combine_heads``).
        feature_normalization: ``"frozen"`` (what the default ``"auto"``
            means here): a ``LayerNormalization``
            on the output of each frozen (``trainable=False``) encoder before the
            fusion, so that fixed pretrained vectors of very different scales are
            fused on an equal footing (each norm's scale starts at the smallest
            normalised size over its own, so every normalised vector carries
            about the same L1 mass and the fusion learns from each at the same
            pace); ``"layer"``: on every encoder's output; ``None``: the encoder
            outputs as they are. A frozen encoder also runs in inference mode
            in training steps (no dropout). ``"auto"`` (default) is
            ``"frozen"`` in a model built here; in a model that
            :func:`keras_mm.train` builds from a config it is ``"layer"`` when
            each encoder is trained by a loss on its own output (several
            features with auxiliary losses, its default, or one feature) and
            ``"frozen"`` otherwise: measured, every encoder's norm helped
            ``keras_mm.train``'s fusions and single-feature models and cost
            ``model.fit``'s fusions (README, "Feature normalisation").
        config: a :class:`ModelConfig` (or its dict) instead of the arguments
            above; may also be passed as the first positional argument.
        preset: a named recipe (``keras_mm.list_presets()``); every argument
            above that is given overrides it, whatever its value
            (``modality_dropout=0.0``, ``fusion="concat"``, ``head=None``);
            ``encoders`` merge per feature.

    Returns:
        a :class:`MultimodalModel`; ``model.preprocessor`` maps raw inputs.

    Raises:
        ValueError: naming the field and the allowed values for unknown
            components, unknown or missing arguments and absent checkpoints.

    Example:
        >>> model = keras_mm.build_model(
        ...     encoders={"image": "small_cnn", "audio": "mfcc_cnn"},
        ...     fusion="attention", head="classification", num_classes=10)
        >>> keras_mm.build_model(preset="tiny_attention", fusion="concat", num_classes=3).fusion.name
        'fusion'
    """
    arguments = locals()
    given = {field: arguments[field] for field in _FIELDS if arguments[field] is not NOT_GIVEN}
    config = _resolve_config(given, config, preset)
    return _build_from_config(config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config))


def _resolve_config(given, config, preset):
    """The ModelConfig (or its dict) that the explicitly ``given`` fields, ``config`` and ``preset`` describe."""
    first = given.get("encoders")
    if isinstance(first, ModelConfig) or (isinstance(first, dict) and "encoders" in first):
        if config is not None:
            raise ValueError("Pass the config either positionally or as config=, not both.")
        config = given.pop("encoders")
    if preset is not None:
        if config is not None:
            raise ValueError("Pass either preset= (with overrides) or config=, not both.")
        return preset_config(preset, **given)
    if config is not None:
        if given:
            raise ValueError(f"Pass either config= or {'/'.join(k + '=' for k in given)}, not both.")
        return config
    if "encoders" not in given:
        raise ValueError("build_model needs encoders={feature: encoder_name_or_dict}, config=ModelConfig(...) or preset=.")
    return given


def _build_from_config(config):
    """Instantiate the encoders, fusion and head of a :class:`ModelConfig` into a :class:`MultimodalModel`."""
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
        if config.class_names is not None and "class_names" not in spec:
            if "class_names" not in constructor_arguments(head_cls)[0]:
                raise ValueError(f"class_names: head={config.head['name']!r} has no classes to name.")
            spec["class_names"] = config.class_names
        built_head = instantiate(HEADS, spec, "head", provided=provided, default_name="head")
    auxiliary = None
    if config.auxiliary_heads:
        # Same head class and settings as the main head: each feature is classified on its own.
        auxiliary = {
            feature: instantiate(HEADS, spec, "head", provided=provided, default_name=f"aux_{feature}")
            for feature in sorted(built_encoders)
        }

    model = MultimodalModel(
        built_encoders,
        built_fusion,
        built_head,
        return_extras=config.return_extras,
        modality_dropout=config.modality_dropout,
        auxiliary_heads=auxiliary,
        feature_normalization=config.feature_normalization,
        # where the heads are softmax classifiers, the served answer can draw on them too: weights [1, 0, ...]
        # (the fused head alone) until keras_mm.train fits them on validation data
        head_combination=bool(auxiliary) and built_head.activation == "softmax",
        name=config.name,
    )
    model.config = config
    return model
