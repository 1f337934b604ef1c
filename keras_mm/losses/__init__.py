"""Losses beyond Keras' own: metric learning for embedding heads."""

from keras_mm.losses.triplet import TripletLoss, pairwise_distances

__all__ = ["TripletLoss", "pairwise_distances"]
