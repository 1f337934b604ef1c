"""The serving computation shared by every export format: raw or numeric inputs -> named outputs."""

import tensorflow as tf

from keras_mm.naming import HEAD_OUTPUT, STATUS, auxiliary_name, input_name, model_class_names, presence_name
from keras_mm.preprocessing.status import status_names


class ServingFunctions:
    """Builds the functions behind the serving signatures of a model.

    ``raw(inputs)`` runs ``model.preprocessor`` (the training preprocessing,
    not a copy) then the model; ``numeric(inputs)`` runs the model alone. Both
    return the head's named outputs (e.g. ``probabilities``, ``class_id``),
    ``<feature>_present`` per feature, ``valid`` (at least one modality usable)
    and the fusion's extras (e.g. ``modality_weights``). ``raw`` also returns
    ``<feature>_status`` (why a sample is missing: ``ok``, ``empty``,
    ``undecodable``, ``file_path_instead_of_bytes``, ...; ``invalid_utf8``: text
    used without its invalid bytes) and, when the model
    has class names, ``class_name`` (``""`` for a sample with no usable
    modality, ``valid`` false: its ``class_id`` is the head's answer to no
    input at all, not a prediction). String outputs stay out of ``numeric``,
    which TFLite converts.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", class_names=["cat", "dog", "emu"])
        >>> fns = ServingFunctions(model)
        >>> out = fns.raw(model.preprocessor.example_raw(2))
        >>> out["class_name"].shape, out["text_status"].numpy().tolist()
        (TensorShape([2]), [b'ok', b'ok'])
    """

    def __init__(self, model, class_names=None):
        if not hasattr(model, "fusion") or not hasattr(model, "preprocessor"):  # was AttributeError: ... 'fusion'
            raise ValueError(f"{type(model).__name__} cannot be exported with keras_mm's serving signatures: they serve "
                             "a model from keras_mm.build_model (encoders, fusion, head). Save it with model.save(...).keras.")
        self.model = model
        self.class_names = model_class_names(model, class_names)
        self.preprocessor = model.preprocessor
        self.core = model.extras_model() if model.fusion.extra_outputs else model

    def raw_signature(self, audio_format="waveform"):
        """``{feature: tf.TensorSpec}`` of the raw inputs; audio as float ``[B, N]`` or WAV bytes ``[B]``."""
        specs = {}
        for feature, pre in self.preprocessor.feature_preprocessors.items():
            if audio_format == "wav" and hasattr(pre, "wav_spec"):
                specs[feature] = pre.wav_spec
            else:
                specs[feature] = pre.raw_spec
        return specs

    def numeric_signature(self):
        return {name: tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=name) for name, t in self.model.input.items()}

    def _outputs(self, numeric):
        result = self.core(numeric, training=False)
        if isinstance(result, dict):
            main = result["output"]
            # The auxiliary heads' unimodal predictions are a training aid, not part of the served answer.
            # So is the fused head's own prediction before the head combination ("output" is the combined one).
            auxiliary = {auxiliary_name(k) for k in getattr(self.model, "auxiliary_heads", {})} | {HEAD_OUTPUT}
            extras = {k: v for k, v in result.items() if k != "output" and k not in auxiliary}
        else:
            main, extras = result, {}
        head = self.model.head
        outputs = dict(head.serving_outputs(main)) if head is not None else {"embedding": main}
        outputs.update(extras)
        present = []
        for feature in self.model.features:
            flag = tf.cast(numeric[presence_name(feature)], tf.float32)
            outputs[presence_name(feature)] = flag
            present.append(flag)
        outputs["valid"] = tf.reduce_any(tf.stack(present, axis=1) > 0, axis=1)
        return outputs

    def raw(self, inputs):
        numeric, statuses = self.preprocessor.process_batch_with_status(inputs)
        outputs = self._outputs(numeric)
        for feature, codes in statuses.items():
            outputs[input_name(feature, STATUS)] = status_names(codes)
        if self.class_names and "class_id" in outputs:
            names = tf.gather(tf.constant(self.class_names), outputs["class_id"])
            # no modality usable: the head's answer to nothing is not a prediction worth a name
            outputs["class_name"] = tf.where(outputs["valid"], names, tf.constant(""))
        return outputs

    def numeric(self, inputs):
        return self._outputs(inputs)
