"""keras_mm: a Keras 3 / TensorFlow model zoo for multimodal deep learning.

Example:
    >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=10)  # image + text + audio
    >>> ds = keras_mm.data.from_manifest(keras_mm.datasets.sample_manifest_path(), model=model, batch_size=8)
    >>> model.compile()  # the head's loss and metrics
    >>> history = model.fit(ds.take(2), epochs=1, verbose=0)
    >>> raw = model.preprocessor.example_raw(4)  # JPEG bytes, UTF-8 text, float waveforms
    >>> model.predict_on_batch(model.preprocessor.process_batch(raw)).shape
    (4, 10)
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_mm.tf_logs import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before anything imports TensorFlow; TF_CPP_MIN_LOG_LEVEL=0 keeps its start-up logs

from keras_mm import data, datasets, encoders, fusions, heads, layers, losses, modalities, preprocessing  # noqa: E402  (registers components)
from keras_mm import testing  # noqa: E402
from keras_mm.config import ModelConfig  # noqa: E402
from keras_mm.presets import list_presets  # noqa: E402
from keras_mm.recipes import Distiller  # noqa: E402
from keras_mm.export import export_onnx, export_saved_model, export_tflite, serving, verify_export  # noqa: E402
from keras_mm.models import DualEncoder, MultimodalModel, build_dual_encoder, build_model  # noqa: E402
from keras_mm.training import train  # noqa: E402
from keras_mm.evaluation import evaluate, evaluate_robustness  # noqa: E402
from keras_mm.registry import (  # noqa: E402
    list_encoders,
    list_fusions,
    list_heads,
    list_modalities,
    register_encoder,
    register_fusion,
    register_head,
    register_modality,
)

from keras_mm.version import __version__  # noqa: E402

__all__ = [
    "Distiller",
    "ModelConfig",
    "data",
    "datasets",
    "MultimodalModel",
    "DualEncoder",
    "build_dual_encoder",
    "build_model",
    "encoders",
    "evaluate",
    "evaluate_robustness",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "fusions",
    "heads",
    "layers",
    "losses",
    "list_encoders",
    "list_fusions",
    "list_heads",
    "list_modalities",
    "modalities",
    "list_presets",
    "preprocessing",
    "register_encoder",
    "register_fusion",
    "register_head",
    "register_modality",
    "serving",
    "testing",
    "train",
    "verify_export",
]
