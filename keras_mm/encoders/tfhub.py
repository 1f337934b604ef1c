"""TF Hub / Kaggle Models SavedModels as encoders (Keras 3 layer around ``tf.saved_model.load``).

``hub.KerasLayer`` is Keras 2 (``tf_keras``) and cannot sit in a Keras 3
model, so :class:`TFHubEncoder` loads the SavedModel itself, calls one of its
signatures, and tracks the variables that signature uses as Keras weights
(the same ``tf.Variable`` objects, so fine-tuning changes what the signature
computes).

Where the SavedModel comes from (nothing is ever downloaded):

- a local SavedModel directory;
- a ``https://tfhub.dev/...`` or ``https://www.kaggle.com/models/...`` URL
  that ``tensorflow_hub`` already cached: ``$TFHUB_CACHE_DIR`` (default
  ``<tempdir>/tfhub_modules``) ``/<sha1 of the URL>``, the rule of
  ``tensorflow_hub``'s resolver;
- a Kaggle handle ``owner/model/framework/variation/version`` (or its URL)
  that ``kagglehub`` already cached under ``$KAGGLEHUB_CACHE`` (default
  ``~/.cache/kagglehub``).

The cache rules are applied here rather than through ``hub.resolve``: that
call downloads on a cache miss, and importing ``tensorflow_hub`` loads Keras 2
(``tf_keras``). A test checks the rule against ``tensorflow_hub`` itself.
"""

import hashlib
import os
import tempfile

import keras
import tensorflow as tf
from kagglehub.cache import Cache  # kagglehub comes with keras-hub, which imports it already
from kagglehub.handle import parse_model_handle
from keras import ops
from keras.src.saving import serialization_lib

from keras_mm.encoders.base import Encoder
from keras_mm.naming import PADDING_MASK, TOKEN_IDS
from keras_mm.preprocessing.image import WHITE, ImagePreprocessor, image_size_pair, validate_background
from keras_mm.preprocessing.text import BertTextPreprocessor, read_vocabulary
from keras_mm.registry import register_encoder

_MODALITIES = ("image", "text")
#: TF Hub's BERT-family input names, in the order of our text inputs.
_HUB_TEXT_INPUTS = {TOKEN_IDS: "input_word_ids", PADDING_MASK: "input_mask", "segment_ids": "input_type_ids"}
_KAGGLE_URL = "https://www.kaggle.com/models/"


def tfhub_cache_dir():
    """The directory ``tensorflow_hub`` caches downloaded URLs in (``$TFHUB_CACHE_DIR`` or ``<tempdir>/tfhub_modules``).

    Example:
        >>> import os, tempfile
        >>> keras_mm.encoders.tfhub.tfhub_cache_dir() == os.environ.get("TFHUB_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tfhub_modules"))
        True
    """
    return os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tfhub_modules")


def _kaggle_cached(handle):
    """``kagglehub``'s cached directory of a versioned model handle, or ``None``."""
    try:
        parsed = parse_model_handle(handle)
    except ValueError:
        return None
    if parsed.version is None:
        return None  # the latest version is only known online
    return Cache().load_from_cache(parsed)


def resolve_hub_handle(handle):
    """Local directory of a TF Hub / Kaggle SavedModel: a path, or a handle already in a local cache.

    Never downloads: a handle with no local copy raises ``ValueError`` naming
    the directories searched and the environment variables that move them.

    Example:
        >>> import tempfile
        >>> path = keras_mm.encoders.tfhub.write_example_savedmodel(tempfile.mkdtemp())
        >>> keras_mm.encoders.tfhub.resolve_hub_handle(path) == path
        True
        >>> keras_mm.encoders.tfhub.resolve_hub_handle("https://tfhub.dev/google/not-cached/1")
        Traceback (most recent call last):
        ValueError: handle='https://tfhub.dev/google/not-cached/1' has no local copy...
    """
    handle = os.path.expanduser(os.fspath(handle))
    if os.path.isdir(handle):
        return handle
    searched = []
    if handle.startswith(("http://", "https://")):
        cached = os.path.join(tfhub_cache_dir(), hashlib.sha1(handle.encode("utf8")).hexdigest())
        searched.append(f"{cached} ($TFHUB_CACHE_DIR, tensorflow_hub's cache)")
        if os.path.isdir(cached) and os.listdir(cached):
            return cached
        kaggle = handle[len(_KAGGLE_URL):].strip("/") if handle.startswith(_KAGGLE_URL) else None
    else:
        kaggle = handle if handle.count("/") in (3, 4) and not handle.startswith((".", "/")) else None
    if kaggle is not None:
        cached = _kaggle_cached(kaggle)
        if cached:
            return cached
        searched.append(f"$KAGGLEHUB_CACHE (kagglehub's cache) for the versioned handle {kaggle!r}")
    where = "; searched " + ", ".join(searched) if searched else ""
    raise ValueError(
        f"handle={handle!r} has no local copy{where}. keras_mm downloads nothing: pass the local "
        "SavedModel directory (the folder with saved_model.pb), or download it once elsewhere "
        "(hub.resolve / kagglehub.model_download) and set TFHUB_CACHE_DIR or KAGGLEHUB_CACHE to that cache."
    )


def write_example_savedmodel(directory, modality="image", image_size=8, output_dim=4):
    """Write a tiny hub-format SavedModel (a ``tf.Module`` with variables and a ``serving_default`` signature).

    Image: ``images`` float32 ``[B, image_size, image_size, 3]`` in [0, 1] ->
    ``{"feature_vector": [B, output_dim]}``. Text: the TF Hub BERT inputs
    ``input_word_ids``/``input_mask``/``input_type_ids`` (int32 ``[B, None]``,
    ids < 16) -> ``{"pooled_output", "sequence_output"}``. For tests, docs and
    trying the encoder without a download.

    Returns:
        ``directory``.

    Example:
        >>> import tempfile
        >>> path = keras_mm.encoders.tfhub.write_example_savedmodel(tempfile.mkdtemp())
        >>> tf.saved_model.load(path).signatures["serving_default"](images=tf.zeros([1, 8, 8, 3]))["feature_vector"].shape
        TensorShape([1, 4])
    """
    module = _ExampleTextModule(output_dim) if modality == "text" else _ExampleImageModule(image_size, output_dim)
    tf.saved_model.save(module, os.fspath(directory), signatures={"serving_default": module.serve})
    return os.fspath(directory)


class _ExampleImageModule(tf.Module):
    def __init__(self, image_size, output_dim):
        super().__init__()
        rng = tf.random.Generator.from_seed(0)
        self.kernel = tf.Variable(rng.normal([3, output_dim]), name="kernel")
        self.bias = tf.Variable(rng.normal([output_dim]) * 0.1, name="bias")
        self.scale = tf.Variable(2.0, trainable=False, name="scale")  # a non-trainable variable too
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")])

    def _serve(self, images):
        pooled = tf.reduce_mean(images, axis=[1, 2]) * self.scale
        return {"feature_vector": tf.nn.relu(tf.matmul(pooled, self.kernel) + self.bias)}


class _ExampleTextModule(tf.Module):
    def __init__(self, output_dim, vocabulary_size=16):
        super().__init__()
        rng = tf.random.Generator.from_seed(1)
        self.embeddings = tf.Variable(rng.normal([vocabulary_size, output_dim]), name="embeddings")
        self.segments = tf.Variable(rng.normal([2, output_dim]) * 0.1, name="segments")
        self.serve = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None, None], tf.int32, name=n) for n in _HUB_TEXT_INPUTS.values()]
        )

    def _serve(self, input_word_ids, input_mask, input_type_ids):
        sequence = tf.gather(self.embeddings, input_word_ids) + tf.gather(self.segments, input_type_ids)
        mask = tf.cast(input_mask, tf.float32)[..., None]
        pooled = tf.tanh(tf.reduce_sum(sequence * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0))
        return {"pooled_output": pooled, "sequence_output": sequence}


@register_encoder("tfhub")
class TFHubEncoder(Encoder):
    """A TF Hub / Kaggle Models SavedModel as an image or text encoder; frozen unless ``trainable=True``.

    Preprocessing contract (nothing is read from the SavedModel but its signature):

    - image: the signature takes one float ``[B, H, W, 3]`` tensor. Give
      ``image_size`` (checked against the signature when it fixes H and W)
      and ``value_range``, the pixel range the model expects (TF Hub's
      convention is ``(0, 1)``). The preprocessor decodes and resizes to
      0..255, and the encoder rescales inside the model, so serving and
      training agree.
    - text: the model must take token ids (TF Hub's BERT convention:
      ``input_word_ids``, ``input_mask``, optional ``input_type_ids``,
      int32). keras_mm tokenizes strings with the WordPiece ``vocabulary``
      (default: the SavedModel's ``assets/vocab.txt``) in the preprocessor,
      the same function in ``tf.data`` and in the serving signature. A model
      that takes strings is refused: the core model is numeric (string
      tensors inside it break multi-replica ``fit``, ``.keras`` reloads and
      TFLite); use its token-id encoder with the matching vocabulary.

    The signature runs as exported (inference mode: dropout off, batch-norm
    statistics fixed); with ``trainable=True`` its trainable variables are
    fine-tuned. A ``.keras`` file stores the handle and the (possibly
    fine-tuned) variable values; reloading needs the SavedModel there again
    and ``keras.models.load_model(path, safe_mode=False)``, since loading a
    SavedModel runs its graph code (Keras refuses the same for ``TFSMLayer``).
    ``keras_mm.export_saved_model`` embeds the graph and variables, so the
    export needs nothing else.

    Args:
        handle: a local SavedModel directory, or a TF Hub / Kaggle handle
            already in a local cache (see :func:`resolve_hub_handle`).
        modality: ``"image"`` or ``"text"``.
        output_key: which signature output is the feature vector (``[B, D]``);
            may be omitted when only one output has that shape.
        call_endpoint: signature name.
        image_size: ``(height, width)`` or an int (image).
        value_range: ``(low, high)`` pixel range the model expects (image).
        background: RGB shown through transparent pixels (image).
        vocabulary: WordPiece tokens or a vocab.txt path (text).
        sequence_length: padded token length (text).
        lowercase: uncased tokenization (text).
        trainable: fine-tune the SavedModel's trainable variables.

    Example:
        >>> import tempfile
        >>> path = keras_mm.encoders.tfhub.write_example_savedmodel(tempfile.mkdtemp(), image_size=8)
        >>> enc = keras_mm.encoders.TFHubEncoder(path, image_size=8)
        >>> enc({"": np.full((2, 8, 8, 3), 255.0, "float32")}).shape, enc.trainable_weights
        (TensorShape([2, 4]), [])
    """

    modality = "image"
    #: rebuilding from a file loads the SavedModel's graph: keras.models.load_model needs safe_mode=False
    reloads_safely = False

    def __init__(
        self,
        handle,
        modality="image",
        output_key=None,
        call_endpoint="serving_default",
        image_size=None,
        value_range=(0.0, 1.0),
        background=WHITE,
        vocabulary=None,
        sequence_length=128,
        lowercase=True,
        trainable=False,
        **kwargs,
    ):
        super().__init__(trainable=trainable, **kwargs)
        if modality not in _MODALITIES:
            raise ValueError(f"modality={modality!r} is not supported by 'tfhub'. Allowed: {', '.join(_MODALITIES)}")
        self.handle = os.fspath(handle)
        if serialization_lib.in_safe_mode():
            # set only inside keras.models.load_model(safe_mode=True): rebuilding from a file
            raise ValueError(
                f"This model has a 'tfhub' encoder: rebuilding it loads the SavedModel {self.handle!r}, "
                "which runs that SavedModel's graph code. If you trust it, reload with "
                "keras.models.load_model(path, safe_mode=False)."
            )
        self.modality = modality
        self.call_endpoint = call_endpoint
        self._loaded = tf.saved_model.load(resolve_hub_handle(self.handle))
        if call_endpoint not in self._loaded.signatures:
            raise ValueError(
                f"call_endpoint={call_endpoint!r} is not a signature of {self.handle!r}. "
                f"Available: {', '.join(sorted(self._loaded.signatures)) or 'none'}"
            )
        self._signature = self._loaded.signatures[call_endpoint]
        self._input_specs = self._signature.structured_input_signature[1]
        self.output_key = self._choose_output(output_key)
        self._track_signature_variables(trainable)
        if modality == "image":
            self._configure_image(image_size, value_range, background)
        else:
            self._configure_text(vocabulary, sequence_length, lowercase)

    def _choose_output(self, output_key):
        outputs = self._signature.structured_outputs
        if not isinstance(outputs, dict):
            raise ValueError(f"{self.handle!r}: signature {self.call_endpoint!r} must return a dict of named outputs.")
        vectors = sorted(k for k, v in outputs.items() if v.shape.rank == 2)
        if output_key is None and len(vectors) == 1:
            output_key = vectors[0]
        if output_key not in outputs or outputs[output_key].shape.rank != 2:
            raise ValueError(
                f"output_key={output_key!r} must name a [batch, features] output of {self.handle!r}. "
                f"Allowed: {', '.join(vectors) or 'none (no rank-2 output)'}"
            )
        return output_key

    def _track_signature_variables(self, trainable):
        """Track the signature's own ``tf.Variable``s as Keras weights (shared, not copied)."""
        captured = list(self._signature.graph.variables)
        if trainable and not any(v.trainable for v in captured):
            raise ValueError(
                f"trainable=True, but signature {self.call_endpoint!r} of {self.handle!r} uses no trainable "
                "variable (the SavedModel was exported frozen). Use trainable=False."
            )
        self._hub_variables = []
        for v in captured:
            # a Keras Variable built on an existing tf.Variable wraps that very object
            weight = keras.Variable(v, trainable=v.trainable, name=v.name.split(":")[0].replace("/", "_"))
            self._track_variable(weight)
            self._hub_variables.append(weight)

    def _configure_image(self, image_size, value_range, background):
        if len(self._input_specs) != 1:
            raise ValueError(
                f"{self.handle!r} (modality='image'): signature {self.call_endpoint!r} must take one image tensor, "
                f"it takes {', '.join(sorted(self._input_specs))}."
            )
        (self._image_input, spec), = self._input_specs.items()
        fixed = tuple(spec.shape[1:3]) if spec.shape.rank == 4 else None
        if spec.shape.rank != 4 or spec.shape[-1] != 3 or not spec.dtype.is_floating:
            raise ValueError(f"{self.handle!r}: input {self._image_input!r} is {spec}, expected float [batch, H, W, 3].")
        if image_size is None:
            if None in fixed:
                raise ValueError(f"{self.handle!r} accepts any image size: pass image_size=(height, width).")
            image_size = fixed
        image_size = image_size_pair(image_size)
        if None not in fixed and image_size != fixed:
            raise ValueError(f"image_size={image_size} does not match {self.handle!r}, which takes {fixed}.")
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f"value_range={value_range!r} must be (low, high) with high > low, e.g. (0, 1).")
        self.image_size, self.value_range = image_size, (low, high)
        self.background = validate_background(background)

    def _configure_text(self, vocabulary, sequence_length, lowercase):
        if any(spec.dtype == tf.string for spec in self._input_specs.values()):
            raise ValueError(
                f"{self.handle!r} takes strings: keras_mm's core model is numeric (strings inside it break "
                "multi-replica training, .keras reloads and TFLite), so a string-taking SavedModel cannot be an "
                "encoder. Use the model's token-id encoder (TF Hub BERT: input_word_ids/input_mask/input_type_ids) "
                "with its vocabulary; keras_mm tokenizes in the preprocessor."
            )
        unknown = sorted(set(self._input_specs) - set(_HUB_TEXT_INPUTS.values()))
        if unknown or "input_word_ids" not in self._input_specs:
            raise ValueError(
                f"{self.handle!r} (modality='text') takes {', '.join(sorted(self._input_specs))}; supported inputs: "
                f"{', '.join(_HUB_TEXT_INPUTS.values())} (TF Hub's BERT convention, input_word_ids required)."
            )
        if vocabulary is None:
            vocabulary = os.path.join(resolve_hub_handle(self.handle), "assets", "vocab.txt")
            if not os.path.isfile(vocabulary):
                raise ValueError(f"{self.handle!r} has no assets/vocab.txt: pass vocabulary=[...] or a vocab.txt path.")
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(os.fspath(vocabulary))
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.lowercase = bool(lowercase)

    def input_signature(self):
        if self.modality == "image":
            return {"": ((*self.image_size, 3), "float32")}
        shape = (self.sequence_length,)
        return {ours: (shape, "int32") for ours, theirs in _HUB_TEXT_INPUTS.items() if theirs in self._input_specs}

    def build_preprocessor(self, feature):
        if self.modality == "image":
            return ImagePreprocessor(feature, self.image_size, self.background)
        return BertTextPreprocessor(feature, self.vocabulary, self.sequence_length, self.lowercase)

    @property
    def output_dim(self):
        return int(self._signature.structured_outputs[self.output_key].shape[-1])

    def call(self, inputs, training=None):
        if self.modality == "image":
            low, high = self.value_range
            pixels = ops.cast(inputs[""], "float32") * ((high - low) / 255.0) + low
            args = {self._image_input: tf.cast(pixels, self._input_specs[self._image_input].dtype)}
        else:
            args = {
                theirs: tf.cast(inputs[ours], self._input_specs[theirs].dtype)
                for ours, theirs in _HUB_TEXT_INPUTS.items()
                if theirs in self._input_specs
            }
        return ops.cast(self._signature(**args)[self.output_key], self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"handle": self.handle, "modality": self.modality, "output_key": self.output_key,
                       "call_endpoint": self.call_endpoint})
        if self.modality == "image":
            config.update({"image_size": list(self.image_size), "value_range": list(self.value_range),
                           "background": list(self.background)})
        else:
            config.update({"vocabulary": self.vocabulary, "sequence_length": self.sequence_length,
                           "lowercase": self.lowercase})
        return config


class _ExampleConfig:
    """``TFHubEncoder.example_config``: a tiny SavedModel written once per process (registry-wide tests, docs)."""

    _path = None

    def __get__(self, instance, owner):
        if _ExampleConfig._path is None or not os.path.isdir(_ExampleConfig._path):
            directory = tempfile.mkdtemp(prefix="keras_mm_tfhub_example_")
            _ExampleConfig._path = write_example_savedmodel(os.path.join(directory, "model"), image_size=8)
        return {"handle": _ExampleConfig._path, "image_size": 8, "trainable": True}


TFHubEncoder.example_config = _ExampleConfig()
