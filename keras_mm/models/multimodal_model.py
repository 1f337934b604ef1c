"""The multimodal functional model: encoders -> fusion -> head."""

import importlib.util
import os
import shutil

import keras

from keras_mm.config import check_feature_normalization
from keras_mm.layers.head_combination import HeadCombination
from keras_mm.layers.modality_dropout import ModalityDropout
from keras_mm.models.tracing import TracesTrainStepOnce
from keras_mm.naming import HEAD_OUTPUT, auxiliary_name, input_name, presence_name
from keras_mm.preprocessing.multimodal import MultimodalPreprocessor


def feature_norm_layers(feature_normalization, encoders):
    """``{feature: LayerNormalization}`` for the features that ``feature_normalization`` normalises.

    ``"layer"``: every feature; ``"frozen"`` (and ``"auto"``, which
    ``keras_mm.train`` resolves before it builds): those whose encoder is frozen
    (``trainable=False``); ``None``: none; a list: those features (what
    ``get_config`` records, so a reload rebuilds the same layers whatever the
    encoders' trainable state is then); a dict of layers is passed through
    (``extras_model()`` shares them).

    Each norm's scale (``gamma``) starts at ``d_min / d``: the size of the
    smallest normalised vector over this one's, so every normalised vector
    has about the same L1 norm. A LayerNorm alone gives every dimension unit scale,
    and one Adam step moves each weight by about the learning rate, so the
    most a step can move a linear layer's output through a feature is the
    learning rate times that feature's L1 norm: a 1280-d image vector would
    pull 3.3x harder than a 384-d sentence embedding and be fitted first,
    however little it knows. Measured on OpenClipart with frozen MobileNetV2
    + MiniLM (3 seeds): every fusion then beats the text alone, where
    ``concat``, ``late`` and ``hierarchical`` were below it with ``gamma = 1``.
    A single normalised feature keeps ``gamma = 1``.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "trainable": False},
        ...                                        "audio": {"name": "mfcc_cnn", "trainable": False}}, num_classes=3)
        >>> {f: (model.feature_encoders[f].output_dim, float(norm.gamma[0])) for f, norm in model.feature_norms.items()}
        {'audio': (128, 0.5), 'image': (64, 1.0)}
    """
    if isinstance(feature_normalization, dict):
        return dict(feature_normalization)
    if isinstance(feature_normalization, (list, tuple)):
        features = list(feature_normalization)
    elif check_feature_normalization(feature_normalization) is None:
        features = []
    elif feature_normalization in ("frozen", "auto"):
        features = [feature for feature, encoder in encoders.items() if not encoder.trainable]
    else:
        features = list(encoders)
    dims = {feature: encoders[feature].output_dim for feature in features}
    smallest = min(dims.values(), default=None)
    return {feature: keras.layers.LayerNormalization(
                name=f"{feature}_norm",
                gamma_initializer=keras.initializers.Constant(smallest / dims[feature]))
            for feature in sorted(features)}


def encoder_inputs(feature, encoder):
    """``{suffix: keras.Input}`` for one feature's encoder, named ``<feature>[_<suffix>]``."""
    return {
        suffix: keras.Input(shape=shape, dtype=dtype, name=input_name(feature, suffix))
        for suffix, (shape, dtype) in encoder.input_signature().items()
    }


class ModelDiagram:
    """A drawn model graph (``MultimodalModel.plot``); notebooks show it through ``_repr_png_``/``_repr_svg_``.

    Attributes:
        data: the image file's bytes.
        format: ``"png"``, ``"svg"``, ...

    Example:
        >>> from keras_mm.models.multimodal_model import ModelDiagram
        >>> ModelDiagram(b"<svg></svg>", "svg")._repr_svg_()
        '<svg></svg>'
    """

    def __init__(self, data, format):
        self.data, self.format = data, format

    def _repr_png_(self):
        return self.data if self.format == "png" else None

    def _repr_svg_(self):
        return self.data.decode("utf-8") if self.format == "svg" else None


@keras.saving.register_keras_serializable(package="keras_mm")
class MultimodalModel(TracesTrainStepOnce, keras.Model):
    """A Keras functional model joining per-feature encoders through a fusion and a head.

    Inputs are numeric only (see ``model.preprocessor`` for raw -> numeric):
    ``<feature>`` float32 images ``[B, H, W, 3]`` (0..255) or waveforms
    ``[B, N]``; ``<feature>_token_ids``/``_segment_ids``/``_padding_mask`` for
    text; and ``<feature>_present`` float32 ``[B]`` for every feature (1 =
    present, 0 = missing for that sample: the fusion ignores it).
    ``modality_dropout`` drops whole modalities per sample during training so
    the model learns to predict from whatever is present. With
    ``feature_normalization="frozen"`` (what ``build_model``'s default ``"auto"`` means) each frozen
    encoder's pooled vector goes through its own ``LayerNormalization``
    (``<feature>_norm``) before the fusion and the auxiliary heads, so fixed
    features of very different scales (a frozen 1280-d MobileNetV2 vector next
    to a 384-d sentence embedding) enter the fusion on an equal footing;
    ``"layer"`` does it for every encoder (token-level fusions such as
    ``cross_attention`` normalise inside and get none). The output is the head's tensor, or the fused vector when ``head`` is
    ``None``; with ``return_extras=True`` it is a dict holding ``"output"``
    and the fusion's extras (e.g. ``"modality_weights"``).

    Build it with :func:`keras_mm.build_model` rather than directly.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn", "audio": "mfcc_cnn"},
        ...                              fusion="attention", num_classes=10)
        >>> model.compile()   # head defaults: loss and metrics
        >>> raw = model.preprocessor.example_raw(8)    # {"image": PNG/JPEG bytes, "audio": waveforms}
        >>> raw_ds = tf.data.Dataset.from_tensor_slices((raw, np.arange(8) % 10))
        >>> history = model.fit(raw_ds.map(model.preprocessor).batch(4), epochs=1, verbose=0)
        >>> sorted(model.input)
        ['audio', 'audio_present', 'image', 'image_present']
    """

    def __init__(self, encoders, fusion, head=None, return_extras=False, modality_dropout=0.0, auxiliary_heads=None,
                 feature_normalization=None, head_combination=False, **kwargs):
        if not encoders:
            raise ValueError("encoders must name at least one feature.")
        auxiliary_heads = dict(auxiliary_heads or {})
        if auxiliary_heads and sorted(auxiliary_heads) != sorted(encoders):
            raise ValueError(f"auxiliary_heads must have one head per feature {sorted(encoders)}, got {sorted(auxiliary_heads)}.")
        # === Layers ===
        self.feature_encoders = {k: encoders[k] for k in sorted(encoders)}
        self.fusion = fusion
        self.head = head
        if isinstance(modality_dropout, ModalityDropout):  # shared by extras_model(): one random state
            self.modality_dropout = modality_dropout
        else:
            self.modality_dropout = ModalityDropout(modality_dropout, name="modality_dropout")
        # a dict of layers when extras_model() shares this model's. Token-level fusions (cross_attention)
        # normalise inside and read only some pooled vectors: a norm on the others would get no gradient.
        # Decided before assigning: a dict of layers assigned and then replaced stays tracked, and its unused
        # norms made Keras warn "build() was called on layer 'multimodal_model' ... unbuilt state".
        self.feature_norms = {} if fusion.uses_sequences else feature_norm_layers(feature_normalization, self.feature_encoders)
        if isinstance(head_combination, HeadCombination):  # shared by extras_model()
            self.head_combination = head_combination
        elif head_combination:
            if not auxiliary_heads or head is None or head.activation != "softmax":
                raise ValueError("head_combination=True needs auxiliary_heads and a softmax head (head='classification'); "
                                 f"got auxiliary heads for {sorted(auxiliary_heads)} and head {type(head).__name__}.")
            self.head_combination = HeadCombination(sorted(auxiliary_heads), name="head_combination")
        else:
            self.head_combination = None

        # === Functional Model ===
        fusion.configure({k: enc.modality for k, enc in self.feature_encoders.items()})
        if fusion.uses_sequences:
            unsupported = [k for k, enc in self.feature_encoders.items() if not enc.supports_sequences]
            if unsupported:
                raise ValueError(
                    f"fusion {type(fusion).__name__} attends over token sequences, but the encoders of "
                    f"{unsupported} do not return them: add a return_sequence=False argument to their call "
                    "(see keras_mm.encoders.Encoder), or choose another fusion."
                )
        inputs, features, presence, sequences, sequence_masks = {}, {}, {}, {}, {}
        for feature, encoder in self.feature_encoders.items():
            feature_inputs = encoder_inputs(feature, encoder)
            for suffix, tensor in feature_inputs.items():
                name = input_name(feature, suffix)
                if name in inputs:
                    raise ValueError(f"Two features produce the model input {name!r}; rename one feature.")
                inputs[name] = tensor
            if fusion.uses_sequences:
                encoded = encoder(feature_inputs, return_sequence=True)
                features[feature] = encoded["pooled"]
                sequences[feature], sequence_masks[feature] = encoded["sequence"], encoded["sequence_mask"]
            else:
                features[feature] = encoder(feature_inputs)
            if feature in self.feature_norms:
                features[feature] = self.feature_norms[feature](features[feature])
            flag_name = presence_name(feature)
            inputs[flag_name] = presence[feature] = keras.Input(shape=(), dtype="float32", name=flag_name)
        presence = self.modality_dropout(presence)
        if fusion.uses_sequences:
            fused = fusion(features, presence, sequences=sequences, sequence_masks=sequence_masks)
        else:
            fused = fusion(features, presence)
        output = head(fused["fused"]) if head is not None else fused["fused"]
        # Unimodal predictions from each encoder's own output (balance methods train them).
        auxiliary = {auxiliary_name(k): auxiliary_heads[k](features[k]) for k in sorted(auxiliary_heads)}
        combined = {}
        if self.head_combination is not None:
            # the served answer: the fused head and the present features' own heads, with weights fitted on
            # validation data after training ([1, 0, ...] until then: the fused head alone)
            combined = {HEAD_OUTPUT: output}
            output = self.head_combination(output, {k: auxiliary[auxiliary_name(k)] for k in sorted(auxiliary_heads)}, presence)
        if return_extras:
            outputs = {"output": output, **{k: v for k, v in fused.items() if k != "fused"}, **auxiliary, **combined}
        else:
            outputs = output
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.return_extras = bool(return_extras)
        # An attribute, so their weights are trained, saved and loaded even when the
        # outputs above leave them out of the graph.
        self.auxiliary_heads = auxiliary_heads
        self._preprocessor = None
        self._extras_model = None

    @property
    def features(self):
        """Feature names, sorted."""
        return list(self.feature_encoders)

    @property
    def modalities(self):
        """``{feature: modality}``."""
        return {k: enc.modality for k, enc in self.feature_encoders.items()}

    @property
    def class_names(self):
        """The head's class names in id order (``None`` when it has none)."""
        return None if self.head is None else self.head.class_names

    @property
    def preprocessor(self):
        """The :class:`MultimodalPreprocessor` mapping raw dicts to this model's inputs."""
        if self._preprocessor is None:
            self._preprocessor = MultimodalPreprocessor(
                {k: enc.build_preprocessor(k) for k, enc in self.feature_encoders.items()}
            )
        return self._preprocessor

    def extras_model(self):
        """A model sharing these weights that also outputs the fusion's extras and the auxiliary heads' predictions.

        Its outputs are a dict: ``"output"``, the fusion's extras (e.g.
        ``"modality_weights"``), ``"aux_<feature>"`` per auxiliary head and,
        with a head combination, ``"head_output"`` (the fused head before it).
        Built once and cached.

        Example:
            >>> model = keras_mm.build_model(preset="tiny_attention", num_classes=3, auxiliary_heads=True)
            >>> batch = model.preprocessor.process_batch(model.preprocessor.example_raw(2))
            >>> outputs = model.extras_model().predict(batch, verbose=0)
            >>> sorted(outputs), outputs["modality_weights"].shape
            (['aux_audio', 'aux_image', 'aux_text', 'head_output', 'modality_weights', 'output'], (2, 3))
        """
        if self.return_extras:
            return self
        if self._extras_model is None:
            extras = MultimodalModel(
                self.feature_encoders,
                self.fusion,
                self.head,
                return_extras=True,
                modality_dropout=self.modality_dropout,
                auxiliary_heads=self.auxiliary_heads,
                feature_normalization=self.feature_norms,
                head_combination=self.head_combination,
                name=f"{self.name}_extras",
            )
            # Not tracked: its weights are this model's, and saving must not see them twice.
            object.__setattr__(self, "_extras_model", extras)
        return self._extras_model

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """``keras.Model.compile`` whose loss and metrics default to the head's.

        Example:
            >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
            >>> model.compile()                      # head defaults, Adam
            >>> model.loss
            'sparse_categorical_crossentropy'
            >>> model.compile(optimizer=keras.optimizers.SGD(0.01), metrics=["accuracy"])
        """
        if loss is None and self.head is not None:
            loss = self.head.default_loss
            if self.return_extras:
                loss = {"output": loss}
        if metrics is None and self.head is not None:
            metrics = list(self.head.default_metrics)
            if self.return_extras:
                metrics = {"output": metrics}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Our compile only fills defaults, so the stored config replays exactly.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def plot(self, path=None, show_shapes=True, **kwargs):
        """Draw the model's graph (inputs, encoders, fusion, head) with Keras' ``model_to_dot``.

        Needs the ``pydot`` package and Graphviz's ``dot`` program
        (``apt-get install graphviz``; ``make install`` installs it when it can).

        Args:
            path: image file to write; its extension picks the format (``.png``,
                ``.svg``, ``.pdf``, ...). ``None`` writes nothing (for notebooks).
            show_shapes: show each layer's input and output shapes.
            **kwargs: other ``keras.utils.model_to_dot`` options (``expand_nested``, ``dpi``, ``rankdir``, ...).

        Returns:
            a :class:`ModelDiagram` (a PNG unless ``path`` names another format);
            a notebook cell ending with ``model.plot()`` shows it.

        Raises:
            RuntimeError: when pydot or Graphviz's ``dot`` is missing, saying how to install it.

        Example:
            >>> import os
            >>> model = keras_mm.build_model(preset="tiny_attention", num_classes=3)
            >>> try:
            ...     diagram = model.plot("model.png")  # in a notebook: model.plot() shows the graph
            ... except RuntimeError as error:  # no Graphviz here: the message says what to install
            ...     print("apt-get install graphviz" in str(error))
            ... else:
            ...     print(os.path.getsize("model.png") == len(diagram.data))
            True
        """
        if importlib.util.find_spec("pydot") is None:
            raise RuntimeError("model.plot() needs the pydot package: pip install pydot (make install installs it).")
        if shutil.which("dot") is None:
            raise RuntimeError(
                "model.plot() needs Graphviz's `dot` program, which is not on PATH: apt-get install graphviz "
                "(Debian/Ubuntu; brew install graphviz on macOS). make install installs it when run as root or with sudo."
            )
        image_format = "png" if path is None else (os.path.splitext(os.fspath(path))[1][1:].lower() or "png")
        graph = keras.utils.model_to_dot(self, show_shapes=show_shapes, **{"dpi": 72, **kwargs})
        data = graph.create(format=image_format)
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return ModelDiagram(data, image_format)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoders": {k: keras.layers.serialize(v) for k, v in self.feature_encoders.items()},
            "fusion": keras.layers.serialize(self.fusion),
            "head": None if self.head is None else keras.layers.serialize(self.head),
            "return_extras": self.return_extras,
            "modality_dropout": self.modality_dropout.rate,
            "auxiliary_heads": {k: keras.layers.serialize(v) for k, v in self.auxiliary_heads.items()},
            # the features that have a norm: a reload rebuilds exactly these
            "feature_normalization": sorted(self.feature_norms),
            "head_combination": self.head_combination is not None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoders"] = {k: keras.layers.deserialize(v) for k, v in config["encoders"].items()}
        config["fusion"] = keras.layers.deserialize(config["fusion"])
        if config.get("head") is not None:
            config["head"] = keras.layers.deserialize(config["head"])
        config["auxiliary_heads"] = {k: keras.layers.deserialize(v) for k, v in (config.get("auxiliary_heads") or {}).items()}
        # models saved before feature_normalization existed had none
        config.setdefault("feature_normalization", None)
        config.setdefault("head_combination", False)  # models saved before it existed serve the fused head
        return cls(**config)
