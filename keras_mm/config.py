"""``ModelConfig``: a plain, JSON-serializable description of a model."""

import dataclasses
import difflib
import functools
import json


def normalize_component(value, field):
    """``"name"`` or ``{"name": ..., **kwargs}`` -> ``{"name": ..., **kwargs}`` (a copy)."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        if "name" not in value or not isinstance(value["name"], str):
            raise ValueError(f"{field}: a dict must have a 'name' key naming the component, got {value!r}.")
        return dict(value)
    raise ValueError(f"{field}: expected a name (str) or a dict with a 'name' key, got {type(value).__name__}.")


#: the values of ``ModelConfig.feature_normalization``.
FEATURE_NORMALIZATIONS = ("auto", "frozen", "layer", None)


def check_feature_normalization(value):
    """``value`` if it is an allowed ``feature_normalization``, else a ValueError naming the field and the values.

    Example:
        >>> from keras_mm.config import check_feature_normalization
        >>> check_feature_normalization("frozen")
        'frozen'
    """
    if value not in FEATURE_NORMALIZATIONS:
        raise ValueError(f"feature_normalization={value!r} is not supported. Allowed: 'auto', 'frozen', 'layer', None")
    return value


@dataclasses.dataclass
class ModelConfig:
    """Everything ``build_model`` needs, as plain data (round-trips through JSON).

    Args:
        encoders: ``{feature: "encoder_name" | {"name": ..., **kwargs}}``.
        fusion: fusion name or dict.
        head: head name, dict, or ``None`` for an embedding model.
        num_classes: classes of the ``classification``/``multilabel`` head.
        return_extras: also output the fusion's extras (e.g. modality weights).
        modality_dropout: per-sample probability of dropping each modality in training.
        name: the Keras model name.
        class_names: names of the classes in id order; they travel with the
            model (its head's config, ``evaluate``, the SavedModel's
            ``class_name`` output). ``num_classes`` defaults to their number.
        auxiliary_heads: add a unimodal copy of the head on each feature's
            encoder output (``aux_<feature>`` in ``extras_model()``), used by
            the balance methods of ``keras_mm.train``.
        feature_normalization: ``"frozen"``: a ``LayerNormalization`` on the
            output of each frozen (``trainable=False``) encoder before the
            fusion, whose fixed scale cannot adapt (it keeps e.g. a frozen 1280-d
            image vector from drowning a 384-d sentence embedding); ``"layer"``:
            on every encoder's output; ``None``: none; ``"auto"`` (default):
            ``"layer"`` when ``keras_mm.train`` trains a model of several
            features with auxiliary losses (its default ``balance``; a
            fusion's recipe may keep ``"frozen"`` there) or a model of one
            feature, else ``"frozen"`` (``build_model`` alone, e.g. for
            ``model.fit``; several features with ``balance=None``).

    Example:
        >>> config = keras_mm.ModelConfig(encoders={"image": "small_cnn", "audio": "mfcc_cnn"}, num_classes=10)
        >>> config.encoders["image"], config.fusion  # names are normalised to {"name": ...}
        ({'name': 'small_cnn'}, {'name': 'concat'})
        >>> keras_mm.ModelConfig.from_json(config.to_json()) == config
        True
        >>> model = keras_mm.build_model(config)
        >>> model.features, model.output_shape
        (['audio', 'image'], (None, 10))
    """

    encoders: dict
    fusion: object = "concat"
    head: object = "classification"
    num_classes: int = None
    return_extras: bool = False
    modality_dropout: float = 0.0
    name: str = "multimodal_model"
    class_names: list = None
    auxiliary_heads: bool = False
    feature_normalization: str = "auto"

    def __post_init__(self):
        if not isinstance(self.encoders, dict) or not self.encoders:
            raise ValueError(
                "encoders: expected a non-empty dict {feature_name: encoder}, e.g. "
                "{'image': 'mobilenet_v2', 'text': {'name': 'bert', 'checkpoint': '/path'}}."
            )
        for key in self.encoders:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"encoders: feature name {key!r} must be a Python identifier (letters, digits, _).")
        self.encoders = {k: normalize_component(v, f"encoders[{k!r}]") for k, v in self.encoders.items()}
        self.fusion = normalize_component(self.fusion, "fusion")
        self.head = None if self.head is None else normalize_component(self.head, "head")
        if self.class_names is not None:
            if isinstance(self.class_names, str) or not all(isinstance(c, (str, int)) for c in self.class_names):
                raise ValueError(f"class_names must be a list of names, got {self.class_names!r}.")
            self.class_names = [str(c) for c in self.class_names]
            if self.num_classes is None:
                self.num_classes = len(self.class_names)
        if not isinstance(self.auxiliary_heads, bool):
            raise ValueError(f"auxiliary_heads must be True or False, got {self.auxiliary_heads!r}.")
        check_feature_normalization(self.feature_normalization)
        if self.auxiliary_heads and self.head is None:
            raise ValueError("auxiliary_heads=True needs a head (head=None builds an embedding model).")
        if self.num_classes is not None and (isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int)):
            raise ValueError(f"num_classes must be an integer, got {self.num_classes!r}.")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(_unknown_fields_message(unknown))
        return cls(**data)

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


def _unknown_fields_message(unknown):
    """What to say for keyword arguments that are not ``ModelConfig`` fields: the allowed ones, a close match, presets."""
    fields = [f.name for f in dataclasses.fields(ModelConfig)]
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, fields, n=1)
        if close:
            hints.append(f"Did you mean {close[0]!r} for {name!r}?")
    if "preset" in unknown:
        hints.append("A preset is not a field: use keras_mm.build_model(preset=..., **overrides) or "
                     "keras_mm.ModelConfig(**keras_mm.presets.preset_config(name, **overrides)).")
    return " ".join([f"ModelConfig: unknown field(s) {sorted(unknown)}. Allowed: {', '.join(fields)}.", *hints])


_dataclass_init = ModelConfig.__init__


@functools.wraps(_dataclass_init)
def _init_checking_fields(self, *args, **kwargs):
    unknown = [k for k in kwargs if k not in {f.name for f in dataclasses.fields(ModelConfig)}]
    if unknown:  # the dataclass's own TypeError named the argument but not the allowed fields
        raise TypeError(_unknown_fields_message(unknown))
    _dataclass_init(self, *args, **kwargs)


ModelConfig.__init__ = _init_checking_fields
