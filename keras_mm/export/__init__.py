"""Export: TF Serving SavedModels with raw-input signatures, their clients (``serving``), TFLite, ONNX, verification."""

from keras_mm.export import serving
from keras_mm.export.layout import latest_version_dir, next_version
from keras_mm.export.onnx import ONNXModel, export_onnx
from keras_mm.export.saved_model import export_saved_model, read_export_metadata
from keras_mm.export.signatures import ServingFunctions
from keras_mm.export.tflite import TFLiteModel, export_tflite
from keras_mm.export.verify import verify_export, verify_numeric

__all__ = [
    "ONNXModel",
    "ServingFunctions",
    "TFLiteModel",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "latest_version_dir",
    "next_version",
    "read_export_metadata",
    "serving",
    "verify_export",
    "verify_numeric",
]
