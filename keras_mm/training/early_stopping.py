"""Stopping a run when a logged value stops improving."""

import numpy as np


class EarlyStopping:
    """Says when a logged value has not improved for ``patience`` epochs and keeps the best weights.

    Args:
        monitor: the logged value to watch (``"val_loss"``, ``"val_sparse_categorical_accuracy"``, ...).
        patience: epochs without improvement before stopping.
        mode: ``"min"`` or ``"max"``; ``None`` picks ``"max"`` when ``monitor``
            contains ``"acc"``, else ``"min"``.
        restore_best_weights: keep a copy of the weights at the best epoch
            (:meth:`update` takes them from its ``model``) for :meth:`restore`.
        start_from_epoch: epochs (as in ``keras.callbacks.EarlyStopping``)
            during which no epoch counts towards ``patience``: a warm-up, or a
            model that starts slowly (a ``transformer`` fusion with a norm on
            every trainable encoder sat at chance for 7 epochs on AV-Digits,
            then climbed). Their values still count for the best epoch.

    Example:
        >>> stopper = keras_mm.training.EarlyStopping(patience=2)
        >>> [stopper.update({"val_loss": v}) for v in [1.0, 0.8, 0.9, 0.85]]
        [False, False, False, True]
        >>> stopper.message
        'Early stopping: val_loss has not improved for 2 epochs (best 0.8000).'
        >>> slow = keras_mm.training.EarlyStopping(patience=2, start_from_epoch=3)
        >>> [slow.update({"val_loss": v}) for v in [1.0, 1.1, 1.2, 1.3, 0.9, 1.0, 1.0]]
        [False, False, False, False, False, False, True]
    """

    def __init__(self, monitor="val_loss", patience=3, mode=None, restore_best_weights=True, start_from_epoch=0):
        mode = mode if mode is not None else ("max" if "acc" in monitor else "min")
        if mode not in ("min", "max"):
            raise ValueError(f"early_stopping mode={mode!r} is not supported. Allowed: min, max")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"early_stopping patience={patience!r}: pass a number of epochs (an int >= 0).")
        if isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch, int) or start_from_epoch < 0:
            raise ValueError(f"early_stopping start_from_epoch={start_from_epoch!r}: pass a number of epochs (an int >= 0).")
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.start_from_epoch = start_from_epoch
        self.restore_best_weights = restore_best_weights
        self.best, self.best_weights, self.wait = None, None, 0
        self.epochs_seen, self.best_epoch = 0, None

    @classmethod
    def from_argument(cls, early_stopping):
        """Build one from ``train``'s ``early_stopping=`` (``None``/``False``, a patience, or a dict); ``None`` when off."""
        if early_stopping in (None, False):
            return None
        if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
            return cls(patience=early_stopping, mode="min")
        if isinstance(early_stopping, dict):
            unknown = sorted(set(early_stopping) - {"monitor", "patience", "mode", "restore_best_weights", "start_from_epoch"})
            if unknown:
                raise ValueError(
                    f"early_stopping has unknown keys {unknown}. "
                    "Allowed: monitor, patience, mode, restore_best_weights, start_from_epoch"
                )
            return cls(**early_stopping)
        raise ValueError(f"early_stopping={early_stopping!r}: pass a patience (int) or a dict with monitor/patience/mode.")

    def check_logged(self, names):
        """Raise if ``monitor`` is not among the logged ``names`` (a list or a logs dict)."""
        if self.monitor not in names:
            raise ValueError(f"early_stopping monitors {self.monitor!r}, which is not logged. Logged: {', '.join(names)}")

    def update(self, logs, model=None):
        """Take one epoch's ``logs``; return True when training should stop."""
        self.check_logged(logs)
        value = logs[self.monitor]
        self.epochs_seen += 1
        if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
            self.best, self.wait, self.best_epoch = value, 0, self.epochs_seen - 1
            if self.restore_best_weights and model is not None:
                self.best_weights = [np.array(w) for w in model.get_weights()]
            return False
        if self.epochs_seen <= self.start_from_epoch:
            return False  # a warm-up epoch: it does not count towards patience
        self.wait += 1
        return self.wait >= self.patience

    def replay(self, history):
        """Take the logged epochs of a resumed run (a :class:`TrainingHistory`); return True when they already say stop.

        Restores ``best``, ``best_epoch`` and the epochs waited, so a run
        resumed from a checkpoint stops where the uninterrupted run would
        have. The best weights are not in the logs: the trainer loads them
        from the checkpoint directory.

        Example:
            >>> stopper = keras_mm.training.EarlyStopping(patience=2)
            >>> done = keras_mm.training.TrainingHistory({"val_loss": [1.0, 0.8, 0.9]}, [0, 1, 2])
            >>> stopper.replay(done), stopper.best_epoch, stopper.wait
            (False, 1, 1)
        """
        stop = False
        for index in range(len(history.epoch)):
            stop = self.update({key: values[index] for key, values in history.history.items()})
        return stop

    def stalled_message(self, num_classes):
        """A warning when the run stopped with an accuracy that never left chance level (``None`` otherwise).

        Chance level: within 0.05 of ``1 / num_classes``. Small encoders trained
        from scratch can sit there for several epochs before they learn (on
        AV-Digits a CNN alone left it at epoch 12, in the last epoch patience 6
        allowed), so a run stopped there has most likely not started learning.

        Example:
            >>> stopper = keras_mm.training.EarlyStopping(monitor="val_accuracy", patience=2)
            >>> [stopper.update({"val_accuracy": v}) for v in [0.1, 0.11, 0.1, 0.1]]
            [False, False, False, True]
            >>> print(stopper.stalled_message(num_classes=10))  # doctest: +ELLIPSIS
            Early stopping ended the run after 4 epochs with the best val_accuracy 0.110, about chance for 10 classes ...
            >>> stopper.stalled_message(num_classes=2) is None  # 0.11 is not about chance for 2 classes: bad, not stalled
            True
        """
        if not num_classes or num_classes < 2 or self.mode != "max" or "acc" not in self.monitor or self.best is None:
            return None
        chance = 1.0 / num_classes
        if not chance - 0.05 <= self.best <= chance + 0.05:
            return None
        return (
            f"Early stopping ended the run after {self.epochs_seen} epochs with the best {self.monitor} {self.best:.3f}, "
            f"about chance for {num_classes} classes ({chance:.3f}): the model has most likely not started learning. "
            "Encoders trained from scratch can sit at chance for several epochs: pass early_stopping="
            "{..., 'start_from_epoch': 10} or a longer patience, and check that the labels match the inputs."
        )

    @property
    def message(self):
        return f"Early stopping: {self.monitor} has not improved for {self.wait} epoch{'s' if self.wait != 1 else ''} (best {self.best:.4f})."

    def restore(self, model):
        """Put the best epoch's weights back into ``model`` (when they were kept)."""
        if self.best_weights is not None:
            model.set_weights(self.best_weights)
