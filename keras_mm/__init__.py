"""keras_mm: a Keras 3 / TensorFlow model zoo for multimodal deep learning.

Example:
    >>> import keras_mm
    >>> model = keras_mm.build_model(
    ...     encoders={"image": "mobilenet_v2", "text": {"name": "bert", "checkpoint": "/models/minilm"},
    ...               "audio": "mfcc_cnn"},
    ...     fusion="attention", head="classification", num_classes=10)
    >>> ds = raw_ds.map(model.preprocessor).batch(32)
    >>> model.compile(); model.fit(ds)
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_mm import data, datasets, encoders, fusions, heads, layers, losses, modalities, preprocessing  # noqa: E402  (registers components)
from keras_mm import testing  # noqa: E402
from keras_mm.config import ModelConfig  # noqa: E402
from keras_mm.presets import list_presets  # noqa: E402
from keras_mm.recipes import Distiller  # noqa: E402
from keras_mm.export import export_saved_model, export_tflite, serving, verify_export  # noqa: E402
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
