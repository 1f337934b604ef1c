"""Robustness evaluation: each modality removed, and increasing noise per modality (MultiBench style)."""

import json
import os

import numpy as np

from keras_mm.modalities import get_modality
from keras_mm.naming import presence_name


class RobustnessReport:
    """Scores under modality removal and noise; ``print(report)`` gives the table.

    Attributes:
        metric: the head's primary metric ("accuracy" for classifiers, "mae" for regression, "recall_at_1" for embeddings).
        baseline: score with every modality.
        removed: ``{feature: score with that feature missing for every sample}``.
        noise: ``{feature: {level: score}}``.
    """

    def __init__(self, metric, baseline, removed, noise):
        self.metric, self.baseline, self.removed, self.noise = metric, baseline, removed, noise

    def to_dict(self):
        return {"metric": self.metric, "baseline": self.baseline, "removed": self.removed,
                "noise": {f: {str(k): v for k, v in levels.items()} for f, levels in self.noise.items()}}

    def table(self):
        levels = sorted({lvl for v in self.noise.values() for lvl in v})
        lines = [f"{'condition':<26}{self.metric:>10}", f"{'all modalities':<26}{self.baseline:>10.3f}"]
        lines += [f"{'without ' + f:<26}{s:>10.3f}" for f, s in self.removed.items()]
        lines.append("")
        lines.append(f"{'noise level':<26}" + "".join(f"{lvl:>8g}" for lvl in levels))
        for feature, scores in self.noise.items():
            lines.append(f"{'noisy ' + feature:<26}" + "".join(f"{scores[lvl]:>8.3f}" for lvl in levels))
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def save_plot(self, output_dir):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(output_dir, exist_ok=True)
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        names = ["all"] + [f"-{f}" for f in self.removed]
        left.bar(names, [self.baseline, *self.removed.values()], color=["tab:green"] + ["tab:red"] * len(self.removed))
        left.set_ylabel(self.metric)
        left.set_title("Modality removed")
        for feature, scores in self.noise.items():
            levels = sorted(scores)
            right.plot(levels, [scores[lvl] for lvl in levels], marker="o", label=feature)
        right.set_xlabel("noise level")
        right.set_ylabel(self.metric)
        right.set_title("Noise on one modality")
        right.legend()
        fig.tight_layout()
        path = os.path.join(output_dir, "robustness.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        with open(os.path.join(output_dir, "robustness.json"), "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        return path


def evaluate_robustness(model, dataset, noise_levels=(0.0, 0.1, 0.25, 0.5), seed=0, output_dir=None, verbose=True):
    """Score ``model`` with each modality removed and under increasing noise on each modality.

    Removal sets ``<feature>_present`` to 0 for every sample (the model's own
    missing-modality path). Noise comes from each feature's modality
    (``Modality.perturb``): images get Gaussian pixel noise with std
    ``level * 255``; audio gets Gaussian noise at ``level`` times each clip's
    RMS; text loses a fraction ``level`` of its tokens. A modality without a
    noise model gets no noise rows. The score is the head's
    ``primary_metric`` (accuracy for classifiers, MAE for regression,
    recall@1 for embeddings).

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)  # train it first, in practice
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(12))
        >>> test_ds = tf.data.Dataset.from_tensors((x, np.arange(12) % 3))  # or from_manifest(..., model=model)
        >>> report = keras_mm.evaluate_robustness(model, test_ds, noise_levels=(0.0, 0.5), verbose=False)
        >>> report.metric, sorted(report.removed), sorted(report.noise["audio"])  # print(report) shows the table
        ('accuracy', ['audio', 'image', 'text'], [0.0, 0.5])
    """
    if model.head is None:
        raise ValueError("evaluate_robustness needs a model with a head.")
    head = model.head
    batches = [({k: np.asarray(v) for k, v in b[0].items()}, np.asarray(b[1])) for b in dataset]
    labels = np.concatenate([y for _, y in batches])

    def run(transform):
        outputs = []
        for x, _ in batches:
            result = model(transform(x), training=False)
            outputs.append(np.asarray(result["output"] if isinstance(result, dict) else result))
        return head.score(labels, np.concatenate(outputs))

    baseline = run(lambda x: x)
    removed = {}
    for feature in model.features:
        name = presence_name(feature)
        removed[feature] = run(lambda x, name=name: {**x, name: np.zeros_like(x[name])})
    noise = {}
    for feature, modality_name in model.modalities.items():
        modality = get_modality(modality_name)
        if modality.perturb(batches[0][0], feature, 0.0, np.random.default_rng(seed)) is None:
            continue  # this modality defines no noise model
        noise[feature] = {}
        for level in noise_levels:
            rng = np.random.default_rng(seed)
            noise[feature][float(level)] = run(lambda x, f=feature, m=modality, lvl=level: m.perturb(x, f, lvl, rng))
    metric = head.primary_metric
    report = RobustnessReport(metric, baseline, removed, noise)
    if verbose:
        print(report.table())
    if output_dir is not None:
        report.save_plot(output_dir)
    return report
