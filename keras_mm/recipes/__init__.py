"""Training recipes: knowledge distillation."""

from keras_mm.recipes.distillation import Distiller

__all__ = ["Distiller"]
