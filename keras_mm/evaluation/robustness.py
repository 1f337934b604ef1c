"""Robustness evaluation: each modality removed, and increasing noise per modality (MultiBench style)."""

import json
import os

import numpy as np

from keras_mm.modalities import get_modality
from keras_mm.naming import presence_name

#: primary metrics where a smaller value is better (the removal bars turn red when they grow)
LOWER_IS_BETTER = ("mae", "mse", "loss")


class RobustnessReport:
    """Scores under modality removal and noise; ``print(report)`` gives the table.

    Attributes:
        metric: the head's primary metric ("accuracy" for classifiers, "mae" for regression, "recall_at_1" for embeddings).
        baseline: score with every modality.
        removed: ``{feature: score with that feature missing for every sample}``.
        noise: ``{feature: {level: score}}``.
        only: ``{feature: score with every OTHER feature missing}`` (the same
            model on one modality; empty for a single-feature model).
    """

    def __init__(self, metric, baseline, removed, noise, only=None):
        self.metric, self.baseline, self.removed, self.noise = metric, baseline, removed, noise
        self.only = dict(only or {})

    def to_dict(self):
        return {"metric": self.metric, "baseline": self.baseline, "removed": self.removed, "only": self.only,
                "noise": {f: {str(k): v for k, v in levels.items()} for f, levels in self.noise.items()}}

    def table(self):
        levels = sorted({lvl for v in self.noise.values() for lvl in v})
        lines = [f"{'condition':<26}{self.metric:>10}", f"{'all modalities':<26}{self.baseline:>10.3f}"]
        lines += [f"{'without ' + f:<26}{s:>10.3f}" for f, s in self.removed.items()]
        lines += [f"{'only ' + f:<26}{s:>10.3f}" for f, s in self.only.items()]
        lines.append("")
        lines.append(f"{'noise level':<26}" + "".join(f"{lvl:>8g}" for lvl in levels))
        for feature, scores in self.noise.items():
            lines.append(f"{'noisy ' + feature:<26}" + "".join(f"{scores[lvl]:>8.3f}" for lvl in levels))
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def _repr_pretty_(self, printer, cycle):
        """IPython shows the table when the report ends a notebook cell."""
        printer.text(self.table())

    def save_plot(self, output_dir):
        """Write ``robustness.png`` (bars: modality removed; lines: noise level) and ``robustness.json``; return the PNG path.

        A bar is red only where the score got worse than with every modality
        (lower accuracy, higher MAE), green otherwise; each bar is labelled.

        Example:
            >>> import tempfile
            >>> from keras_mm.evaluation.robustness import RobustnessReport
            >>> report = RobustnessReport("accuracy", 0.9, {"image": 0.9, "audio": 0.4}, {"audio": {0.0: 0.9, 0.5: 0.6}})
            >>> os.path.basename(report.save_plot(tempfile.mkdtemp())), report.bar_colors()
            ('robustness.png', ['tab:blue', 'tab:green', 'tab:red'])
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(output_dir, exist_ok=True)
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        names = ["all"] + [f"without\n{f}" for f in self.removed] + [f"only\n{f}" for f in self.only]
        scores = [self.baseline, *self.removed.values(), *self.only.values()]
        bars = left.bar(names, scores, color=self.bar_colors())
        left.bar_label(bars, fmt="%.3f", fontsize=8)
        self._set_score_limits(left, scores)
        left.set_ylabel(self.metric)
        left.set_title("Modalities removed (red: score got worse)")
        for feature, by_level in self.noise.items():
            levels = sorted(by_level)
            right.plot(levels, [by_level[lvl] for lvl in levels], marker="o", label=feature)
        self._set_score_limits(right, [v for by_level in self.noise.values() for v in by_level.values()] or scores)
        right.set_xlabel("noise level (see evaluate_robustness)")
        right.set_ylabel(self.metric)
        right.set_title("Noise on one modality")
        if self.noise:
            right.legend()
        fig.tight_layout()
        path = os.path.join(output_dir, "robustness.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        with open(os.path.join(output_dir, "robustness.json"), "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        return path

    def bar_colors(self):
        """Colours of the removal bars: the baseline blue, then red where the score dropped, green where it did not."""
        worse = (lambda s: s > self.baseline) if self.metric in LOWER_IS_BETTER else (lambda s: s < self.baseline)
        return ["tab:blue"] + ["tab:red" if worse(s) else "tab:green" for s in (*self.removed.values(), *self.only.values())]

    def _set_score_limits(self, ax, scores):
        """Bounded metrics (accuracy, recall) on their full 0..1 scale, so a small change looks small; others from 0."""
        top = max(scores) if scores else 1.0
        ax.set_ylim(0.0, 1.05 if self.metric not in LOWER_IS_BETTER and top <= 1.0 else top * 1.15 or 1.0)


def evaluate_robustness(model, dataset, noise_levels=(0.0, 0.1, 0.25, 0.5), seed=0, output_dir=None, verbose=True):
    """Score ``model`` with each modality removed and under increasing noise on each modality.

    Removal sets ``<feature>_present`` to 0 for every sample (the model's own
    missing-modality path); "only <feature>" removes every other feature,
    which scores the same model on one modality (a model trained with
    ``modality_dropout`` has learnt that case; it is not a separately trained
    single-modality model). Noise comes from each feature's modality
    (``Modality.perturb``): images get Gaussian pixel noise with std
    ``level * 255``; audio gets Gaussian noise at ``level`` times each clip's
    RMS; text loses a fraction ``level`` of its tokens. A modality without a
    noise model gets no noise rows. The score is the head's
    ``primary_metric`` (accuracy for classifiers, MAE for regression,
    recall@1 for embeddings).

    With ``verbose`` it prints one summary line; ``print(report)`` (or the
    report as the last line of a notebook cell) shows the full table, and
    ``output_dir`` gets ``robustness.png`` and ``robustness.json``.

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
    only = {}
    if len(model.features) > 1:
        for feature in model.features:
            others = [presence_name(f) for f in model.features if f != feature]
            only[feature] = run(lambda x, others=others: {**x, **{n: np.zeros_like(x[n]) for n in others}})
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
    report = RobustnessReport(metric, baseline, removed, noise, only)
    if output_dir is not None:
        report.save_plot(output_dir)
    if verbose:  # one progress line; the table is print(report), so it is never printed twice
        print(f"evaluate_robustness: {metric} {baseline:.3f} with every modality, "
              + ", ".join([f"{s:.3f} without {f}" for f, s in removed.items()] + [f"{s:.3f} {f} only" for f, s in only.items()])
              + (f"; plot in {os.path.join(output_dir, 'robustness.png')}" if output_dir is not None else ""))
    return report
