"""Robustness evaluation: each modality removed, and increasing noise per modality (MultiBench style)."""

import json
import os

import numpy as np


def _score(task, labels, outputs):
    if task == "binary":
        return float(((outputs[:, 0] > 0.5).astype(int) == labels.reshape(-1)).mean())
    if task == "classification":
        return float((outputs.argmax(-1) == labels.reshape(-1)).mean())
    if task == "multilabel":
        return float(((outputs > 0.5).astype(int) == labels).all(1).mean())
    return float(np.abs(outputs - labels.reshape(outputs.shape)).mean())


def _perturb(x, feature, modality, level, rng):
    x = dict(x)
    if modality == "image":
        pixels = np.asarray(x[feature], np.float32)
        x[feature] = np.clip(pixels + rng.normal(0, level * 255.0, pixels.shape), 0, 255).astype(np.float32)
    elif modality == "audio":
        wave = np.asarray(x[feature], np.float32)
        rms = np.sqrt((wave**2).mean(axis=1, keepdims=True)) + 1e-8
        x[feature] = (wave + rng.normal(0, 1, wave.shape) * rms * level).astype(np.float32)
    else:  # text: delete a fraction `level` of the tokens (keep the first position, e.g. [CLS])
        mask = np.asarray(x[f"{feature}_padding_mask"]).copy()
        drop = rng.random(mask.shape) < level
        drop[:, 0] = False
        x[f"{feature}_padding_mask"] = np.where(drop, 0, mask).astype(mask.dtype)
    return x


class RobustnessReport:
    """Scores under modality removal and noise; ``print(report)`` gives the table.

    Attributes:
        metric: "accuracy" (classifiers) or "mae" (regression).
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
    missing-modality path). Noise: images get Gaussian pixel noise with std
    ``level * 255``; audio gets Gaussian noise at ``level`` times each clip's
    RMS; text loses a fraction ``level`` of its tokens.

    Example:
        >>> report = keras_mm.evaluate_robustness(model, test_ds, output_dir="reports/run1")
        >>> report.removed["image"], report.noise["audio"][0.5]
    """
    if model.head is None:
        raise ValueError("evaluate_robustness needs a model with a head.")
    task = model.head.registered_name_in_zoo
    metric = "mae" if task == "regression" else "accuracy"
    batches = [({k: np.asarray(v) for k, v in b[0].items()}, np.asarray(b[1])) for b in dataset]
    labels = np.concatenate([y for _, y in batches])

    def run(transform):
        outputs = []
        for x, _ in batches:
            result = model(transform(x), training=False)
            outputs.append(np.asarray(result["output"] if isinstance(result, dict) else result))
        return _score(task, labels, np.concatenate(outputs))

    baseline = run(lambda x: x)
    removed = {f: run(lambda x, f=f: {**x, f"{f}_present": np.zeros_like(x[f"{f}_present"])}) for f in model.features}
    noise = {}
    for feature, modality in model.modalities.items():
        noise[feature] = {}
        for level in noise_levels:
            rng = np.random.default_rng(seed)
            noise[feature][float(level)] = run(lambda x, f=feature, m=modality, lvl=level: _perturb(x, f, m, lvl, rng))
    report = RobustnessReport(metric, baseline, removed, noise)
    if verbose:
        print(report.table())
    if output_dir is not None:
        report.save_plot(output_dir)
    return report
