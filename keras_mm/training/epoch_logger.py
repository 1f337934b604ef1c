"""Reporting training progress: stdout and TensorBoard."""

import os
import time

import keras
import tensorflow as tf


class EpochLogger:
    """Prints a progress bar or one line per epoch and writes per-epoch scalars for TensorBoard.

    Args:
        epochs: total epochs of the run (for ``Epoch 3/10``).
        steps: steps per epoch when known (sizes the progress bar), else ``None``.
        verbose: ``"auto"`` (progress bar on a terminal, one line per epoch
            otherwise), 0 (silent), 1 (progress bar) or 2 (one line per epoch).
        tensorboard_dir: where to write scalars; ``None`` writes none.
        chief: only the chief of a multi-worker run writes TensorBoard files.
        names: the names shown on the progress bar (all averaged over the epoch so far).

    Example:
        >>> logger = keras_mm.training.EpochLogger(epochs=2, verbose=2)
        >>> logger.epoch_begin(0)
        Epoch 1/2
        >>> logger.epoch_end(0, {"loss": 0.5})  # doctest: +ELLIPSIS
        0...s - loss: 0.5000
    """

    def __init__(self, epochs, steps=None, verbose="auto", tensorboard_dir=None, chief=True, names=("loss",)):
        self.epochs, self.steps, self.names = epochs, steps, list(names)
        self.verbose = (1 if os.isatty(1) else 2) if verbose == "auto" else verbose
        self.writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir and chief else None
        self._progbar, self._start = None, None

    def say(self, message):
        """Print ``message`` unless silent."""
        if self.verbose:
            print(message, flush=True)

    def resumed(self, path, epochs_done):
        """Say which checkpoint a run continues from (tests parse this line)."""
        self.say(f"Resuming from {path} (epoch {epochs_done} done)")

    def epoch_begin(self, epoch):
        """Start timing ``epoch`` (0-based) and its progress bar."""
        self._start = time.time()
        self.say(f"Epoch {epoch + 1}/{self.epochs}")
        if self.verbose == 1:
            self._progbar = keras.utils.Progbar(self.steps, verbose=1, stateful_metrics=self.names)

    def step(self, step, logs):
        """Advance the progress bar to ``step`` (0-based); ``logs()`` gives the values and is only called when a bar is shown."""
        if self.verbose == 1:
            self._progbar.update(step + 1, list(logs().items()))

    def epoch_end(self, epoch, logs):
        """Print the epoch's summary line and write its scalars."""
        summary = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        self.say(f"{time.time() - self._start:.1f}s - {summary}")
        if self.writer is not None:
            with self.writer.as_default():
                for key, value in logs.items():
                    tf.summary.scalar(key, value, step=epoch)
            self.writer.flush()
