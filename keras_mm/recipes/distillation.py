"""Knowledge distillation (Hinton et al., 2015) for classification models."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mm")
class Distiller(keras.Model):
    """Train ``student`` on hard labels and on ``teacher``'s softened predictions.

    Loss: ``alpha * CE(y, student) + (1 - alpha) * T² * KL(teacher_T ‖ student_T)``
    where ``p_T = softmax(log p / T)`` (heads output probabilities; their log
    is the logits up to a per-sample constant, which softmax ignores). The
    teacher is frozen. Both models take the same numeric inputs (they may use
    different encoders as long as the features match). After training,
    ``distiller.student`` is an ordinary keras_mm model: save or export it.

    Args:
        teacher, student: classification models (softmax outputs).
        temperature: softening temperature ``T``.
        alpha: weight of the hard-label loss.

    Example:
        >>> def image_classifier(filters):
        ...     return keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 16, "filters": filters}},
        ...                                 num_classes=3)
        >>> teacher, student = image_classifier([16, 32]), image_classifier([4])  # in practice: a trained teacher
        >>> x = student.preprocessor.process_batch(student.preprocessor.example_raw(8))
        >>> distiller = keras_mm.Distiller(teacher, student, temperature=4.0, alpha=0.3)
        >>> distiller.compile(optimizer="adam")
        >>> history = distiller.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
        >>> distiller.student.predict(x, verbose=0).shape  # then save or export distiller.student
        (8, 3)
    """

    def __init__(self, teacher, student, temperature=3.0, alpha=0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha={alpha} must be in [0, 1].")
        if float(temperature) <= 0:
            raise ValueError(f"temperature={temperature} must be > 0.")
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.hard_loss = keras.losses.SparseCategoricalCrossentropy()

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def soften(self, probabilities):
        logits = ops.log(ops.clip(ops.cast(probabilities, "float32"), 1e-7, 1.0)) / self.temperature
        return ops.softmax(logits, axis=-1)

    def distillation_loss(self, teacher_probabilities, student_probabilities):
        """``T² · KL(teacher_T ‖ student_T)``, averaged over the batch."""
        p = self.soften(teacher_probabilities)
        q = self.soften(student_probabilities)
        kl = ops.sum(p * (ops.log(ops.clip(p, 1e-7, 1.0)) - ops.log(ops.clip(q, 1e-7, 1.0))), axis=-1)
        return ops.mean(kl) * self.temperature**2

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_pred = ops.stop_gradient(self.teacher(x, training=False))
        soft = self.distillation_loss(teacher_pred, y_pred)
        hard = self.hard_loss(y, y_pred, sample_weight=sample_weight) if self.alpha > 0 else 0.0
        return self.alpha * hard + (1.0 - self.alpha) * soft

    def get_config(self):
        return {
            "name": self.name,
            "teacher": keras.layers.serialize(self.teacher),
            "student": keras.layers.serialize(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["teacher"] = keras.layers.deserialize(config["teacher"])
        config["student"] = keras.layers.deserialize(config["student"])
        return cls(**config)
