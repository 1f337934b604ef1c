from keras_mm.models.builder import build_model
from keras_mm.models.dual_encoder import DualEncoder, build_dual_encoder, info_nce, retrieval_metrics
from keras_mm.models.multimodal_model import MultimodalModel

__all__ = ["DualEncoder", "MultimodalModel", "build_dual_encoder", "build_model", "info_nce", "retrieval_metrics"]
