"""What a training run saves after every epoch and restores when it starts again."""

import json
import logging
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from keras_mm.training.strategy import is_chief

logger = logging.getLogger("keras_mm")
# TensorFlow writes checkpoint N into "<prefix>-N_temp/" and renames it when complete
_INTERRUPTED_WRITE = re.compile(r"ckpt-\d+_temp")


class TrainingHistory:
    """Per-epoch metrics, like ``keras.callbacks.History``: ``history.history["val_loss"]``.

    Example:
        >>> history = keras_mm.training.TrainingHistory()
        >>> history.append(0, {"loss": 0.9, "val_loss": 1.1})
        >>> history.history["val_loss"], history.epoch
        ([1.1], [0])
    """

    def __init__(self, history=None, epoch=None):
        self.history = history or {}
        self.epoch = epoch or []
        #: what ``keras_mm.train`` fitted for the model's head combination (``fit_head_combination``'s result), or ``None``
        self.head_combination = None

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def to_dict(self):
        return {"epoch": self.epoch, "history": self.history}


def fusion_identity(model):
    """The fusion's configuration as JSON data (its layer name, dtype and trainable flag left out), or ``None``.

    A resumed run must rebuild the fusion the checkpoint was trained with: a
    changed default (attention's ``uniform_share``) fits every weight's shape
    but computes something else.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn", "audio": "mfcc_cnn"}, fusion="attention", num_classes=2)
        >>> fusion_identity(model)["uniform_share"]
        0.2
    """
    fusion = getattr(model, "fusion", None)
    if fusion is None:
        return None
    config = {k: v for k, v in fusion.get_config().items() if k not in ("name", "trainable", "dtype")}
    return {"class": type(fusion).__name__, **json.loads(json.dumps(config, default=str))}


def encoder_identity(model):
    """``{feature: {setting: value}}`` of each encoder's ``resume_identity`` settings (encoders without any left out).

    Like a fusion's settings, these change what the weights compute without
    changing their shapes, so a resumed run must have the values it started with.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn", "audio": "mfcc_cnn"}, num_classes=2)
        >>> encoder_identity(model)
        {'image': {'input_normalization': 'per_image'}}
    """
    encoders = getattr(model, "feature_encoders", None) or {}
    return {feature: {key: getattr(encoder, key) for key in encoder.resume_identity}
            for feature, encoder in sorted(encoders.items()) if getattr(encoder, "resume_identity", ())}


def _check_encoder_identity(saved, current, unrecorded, checkpoint_dir):
    """``ValueError`` when a checkpoint's encoder settings differ from the model's, naming feature, setting and both values.

    ``saved``: the checkpoint's :func:`encoder_identity`, ``None`` when its run
    did not record it (then each setting's ``resume_identity_unrecorded`` value is what it trained with).
    """
    for feature, settings in current.items():
        if saved is None:
            before = {k: v for k, v in unrecorded.get(feature, {}).items() if k in settings}
        else:
            before = saved.get(feature, {})
        changed = sorted(k for k in settings if k in before and before[k] != settings[k])
        if changed:
            when = " (recorded before these settings were: the values its code had)" if saved is None else ""
            raise ValueError(
                f"checkpoint_dir {checkpoint_dir!r} holds a run whose encoders[{feature!r}] had "
                + ", ".join(f"{k}={before[k]!r}" for k in changed) + when + "; this model has "
                + ", ".join(f"{k}={settings[k]!r}" for k in changed)
                + ". The weights fit either way but compute something else. A run resumes only with the model it "
                f"started with: pass encoders={{{feature!r}: {{..., "
                + ", ".join(f"{k!r}: {before[k]!r}" for k in changed)
                + "}}, or delete that folder, or give another checkpoint_dir, to start afresh.")


def _check_fusion_identity(saved, current, checkpoint_dir):
    """``ValueError`` when a checkpoint's fusion differs from the model's, naming the settings."""
    if current is None:
        return
    if saved is None:  # written before the fusion was recorded (2026-12-07): attention then had no uniform share
        if current.get("class") == "AttentionFusion" and current.get("uniform_share"):
            raise ValueError(
                f"checkpoint_dir {checkpoint_dir!r} holds a run started before attention fusion's uniform_share "
                f"existed: it trained with the plain softmax, and this model has uniform_share={current['uniform_share']}. "
                "Resume it with fusion={'name': 'attention', 'uniform_share': 0.0, ...}, or give another "
                "checkpoint_dir to start afresh.")
        return
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if changed:
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir!r} holds a checkpoint of another model (its fusion: "
            + ", ".join(f"{k}={saved.get(k)!r} there, {current.get(k)!r} here" for k in changed)
            + "). A run resumes only with the model it started with: build it with the checkpoint's settings, or "
            "delete that folder, or give another checkpoint_dir, to start afresh.")


class TrainState:
    """Model, optimizer, finished epochs and history of a run, checkpointed after every epoch.

    With a ``checkpoint_dir``, :meth:`end_epoch` saves a ``tf.train.Checkpoint``
    (the two newest are kept) and, on the chief, ``history.json`` (written to a
    temporary file and renamed, so a killed run never leaves half a file).
    Other workers of a multi-worker run must take part in the save but write to
    a scratch directory that they delete again. :meth:`restore` loads the
    newest checkpoint, so a run started again continues where it stopped.

    Args:
        model: the model whose weights are saved.
        optimizer: its optimizer, already built (its slots are saved too).
        strategy: the ``tf.distribute.Strategy`` the model was built under.
        checkpoint_dir: where to save; ``None`` keeps the state in memory only.

    Example:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> optimizer = keras.optimizers.SGD(0.1); optimizer.build(model.trainable_variables)
        >>> state = keras_mm.training.TrainState(model, optimizer, tf.distribute.get_strategy())
        >>> state.end_epoch(0, {"loss": 0.5}); state.epochs_done, state.history.history
        (1, {'loss': [0.5]})
    """

    #: what a resumed run must share with the run that wrote the checkpoints besides the weights' shapes
    IDENTITY = "run_identity.json"

    def __init__(self, model, optimizer, strategy, checkpoint_dir=None):
        # the label order: a checkpoint restored under other class names (same number) fits every shape
        # but answers with the old ids, silently (a run file's data.class_names reordered: 0.44 -> 0.13)
        class_names = getattr(model, "class_names", None)
        self.identity = {"class_names": list(class_names) if class_names else None, "fusion": fusion_identity(model),
                         "encoders": encoder_identity(model)}
        encoders = getattr(model, "feature_encoders", None) or {}
        self._unrecorded_encoder_identity = {f: dict(getattr(e, "resume_identity_unrecorded", {})) for f, e in encoders.items()}
        with strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # iterators made of the training data by the epochs done (-1: a checkpoint written before it was kept)
            self.train_iterators = tf.Variable(-1, dtype=tf.int64, trainable=False, name="train_iterators")
        self.history = TrainingHistory()
        # checkpoints written before models had a head combination lack its weights (which are [1, 0, ...]
        # during training anyway): such a checkpoint still resumes
        self._head_combination = getattr(model, "head_combination", None)
        self.checkpoint_dir = checkpoint_dir
        self.chief = is_chief(strategy)
        self._manager = None
        if checkpoint_dir is not None:
            self._write_dir = checkpoint_dir
            if not self.chief:
                self._write_dir = os.path.join(checkpoint_dir, f".worker_{strategy.cluster_resolver.task_id}")
            self._checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch,
                                                   train_iterators=self.train_iterators)
            self._manager = tf.train.CheckpointManager(self._checkpoint, self._write_dir, max_to_keep=2)

    BEST_WEIGHTS = "best_weights.npz"

    def save_best_weights(self, epoch, weights):
        """Keep the early stopping's best weights (of ``epoch``) next to the checkpoints, so a resumed run can restore them.

        Written by the chief only (to a temporary file, then renamed); a no-op without a checkpoint directory.
        """
        if self._manager is None or not self.chief:
            return
        temporary = os.path.join(self.checkpoint_dir, self.BEST_WEIGHTS + ".tmp")
        with open(temporary, "wb") as f:
            np.savez(f, *weights, epoch=np.int64(epoch))
        os.replace(temporary, os.path.join(self.checkpoint_dir, self.BEST_WEIGHTS))

    def best_weights(self, epoch):
        """The weights :meth:`save_best_weights` kept for ``epoch``, or ``None`` when there are none for that epoch."""
        path = None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir, self.BEST_WEIGHTS)
        if path is None or not os.path.isfile(path):
            return None
        with np.load(path) as saved:
            if int(saved["epoch"]) != epoch:
                return None
            return [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]

    @property
    def epochs_done(self):
        return int(self.epoch.numpy())

    def restore(self):
        """Load the newest checkpoint and history; return the checkpoint's path, or ``None`` when there is none."""
        if self._manager is None:
            return None
        if self.chief:
            self._remove_interrupted_writes()
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if not latest:
            return None
        self._check_identity(latest)
        try:
            status = self._checkpoint.restore(latest)
            try:
                status.assert_existing_objects_matched()
            except AssertionError as error:
                if not self._only_head_combination_unmatched(latest, error):
                    raise
                status.expect_partial()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            raise ValueError(
                f"checkpoint_dir {self.checkpoint_dir!r} holds a checkpoint of another model ({latest} does not fit this "
                f"one: {str(error).splitlines()[0][:300]}). A run resumes only with the model it started with: delete "
                "that folder, or give another checkpoint_dir, to start afresh.") from error
        history_file = os.path.join(self.checkpoint_dir, "history.json")
        if os.path.isfile(history_file):
            with open(history_file) as f:
                saved = json.load(f)
            self.history = TrainingHistory(saved["history"], saved["epoch"])
        return latest

    def _only_head_combination_unmatched(self, latest, error):
        """Whether the one object ``latest`` lacks is the head combination's weights (a checkpoint older than it).

        Read from TensorFlow's message ("Found 1 Python objects that were not
        bound ... [<Variable path=head_combination/...>]"); another wording
        keeps the error.
        """
        if self._head_combination is None:
            return False
        names = [name for name, _ in tf.train.list_variables(latest)]
        if any("head_combination" in name for name in names):
            return False
        message = str(error)
        return message.startswith("Found 1 Python objects that were not bound") and "path=head_combination/" in message

    def _remove_interrupted_writes(self):
        """Delete the ``ckpt-N_temp/`` folders of checkpoint writes that a killed run left unfinished.

        TensorFlow never reads them (the run resumes from the last complete
        checkpoint) and never deletes them; with a BERT encoder and Adam's
        slots each is hundreds of MB.
        """
        if not tf.io.gfile.isdir(self.checkpoint_dir):
            return
        for name in tf.io.gfile.listdir(self.checkpoint_dir):
            name = name.rstrip("/")
            if _INTERRUPTED_WRITE.fullmatch(name):
                tf.io.gfile.rmtree(os.path.join(self.checkpoint_dir, name))
                logger.info("removed %s in %s: a checkpoint write that an interrupted run did not finish", name,
                            self.checkpoint_dir)

    def _check_identity(self, latest):
        path = os.path.join(self.checkpoint_dir, self.IDENTITY)
        if not os.path.isfile(path):  # written by runs since 2026-12: older checkpoints are not checked
            return
        with open(path) as f:
            saved = json.load(f)
        _check_fusion_identity(saved.get("fusion"), self.identity["fusion"], self.checkpoint_dir)
        # recorded since 2026-12-08; runs before trained small_cnn on pixels / 255
        _check_encoder_identity(saved.get("encoders"), self.identity["encoders"], self._unrecorded_encoder_identity,
                                self.checkpoint_dir)
        for key, value in self.identity.items():
            if key in ("fusion", "encoders"):
                continue
            if key == "class_names" and saved.get(key) is None and value == sorted(value or []):
                continue  # written before a model took the manifest's names: the same sorted ids
            if saved.get(key) != value:
                raise ValueError(
                    f"checkpoint_dir {self.checkpoint_dir!r} holds a run trained with {key}={saved.get(key)} (in id order); "
                    f"this model has {key}={value}. Restoring {latest} would answer with the old ids under the new "
                    "names. A run resumes only with the labels it started with: delete that folder, or give another "
                    "checkpoint_dir, to start afresh.")

    @property
    def train_iterators_done(self):
        """How many iterators the epochs done made of the training data (one per epoch for checkpoints that did not keep it).

        A shuffled dataset draws each new iterator's order from a seed
        generator that starts again in a new process: a resumed run makes
        this many iterators first (cheap, nothing is read), so its next epoch
        gets the order the uninterrupted run would have, not epoch 1's again.
        """
        saved = int(self.train_iterators.numpy())
        return self.epochs_done if saved < 0 else saved

    def end_epoch(self, epoch, logs, train_iterators=None):
        """Record ``logs`` for ``epoch`` (0-based), mark it done and save a checkpoint when there is a directory.

        ``train_iterators``: the iterators made of the training data so far (:attr:`train_iterators_done`).
        """
        self.history.append(epoch, logs)
        self.epoch.assign(epoch + 1)
        if train_iterators is not None:
            self.train_iterators.assign(train_iterators)
        if self._manager is None:
            return
        self._manager.save(checkpoint_number=epoch + 1)
        if self.chief:
            for name, content in ((self.IDENTITY, self.identity), ("history.json", self.history.to_dict())):
                temporary = os.path.join(self.checkpoint_dir, name + ".tmp")
                with open(temporary, "w") as f:
                    json.dump(content, f)
                os.replace(temporary, os.path.join(self.checkpoint_dir, name))
        else:
            shutil.rmtree(self._write_dir, ignore_errors=True)
