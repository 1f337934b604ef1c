from keras_mm.models.builder import build_model
from keras_mm.models.multimodal_model import MultimodalModel

__all__ = ["MultimodalModel", "build_model"]
