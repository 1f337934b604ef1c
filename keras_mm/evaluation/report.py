"""``keras_mm.evaluate``: metrics, a printed report and PNG plots for a trained model."""

import base64
import html
import io
import json
import os

import numpy as np

from keras_mm.naming import model_class_names



def collect_predictions(model, dataset):
    """Run ``model`` over ``(inputs, labels)`` batches: (labels, head outputs, fusion extras)."""
    core = model.extras_model() if model.fusion.extra_outputs and not model.return_extras else model
    labels, outputs, extras = [], [], {}
    for batch in dataset:
        x, y = batch[0], batch[1]
        result = core(x, training=False)
        if isinstance(result, dict):
            outputs.append(np.asarray(result["output"]))
            for key, value in result.items():
                if key != "output":
                    extras.setdefault(key, []).append(np.asarray(value))
        else:
            outputs.append(np.asarray(result))
        labels.append(np.asarray(y))
    return np.concatenate(labels), np.concatenate(outputs), {k: np.concatenate(v) for k, v in extras.items()}


class EvaluationReport:
    """Metrics of a model on a dataset; ``print(report)`` gives an sklearn-style table.

    Attributes:
        metrics: dict of scalar metrics (accuracy, macro precision/recall/F1, ROC-AUC, ...).
        per_class: list of dicts (name, precision, recall, f1, support) for classifiers.
        confusion: confusion matrix (rows: true class) for classifiers.
        modality_weights: mean attention weight per feature, overall and per true class.
    """

    def __init__(self, task, metrics, per_class=None, confusion=None, class_names=None, modality_weights=None, features=None):
        self.task = task
        self.metrics = metrics
        self.per_class = per_class or []
        self.confusion = confusion
        self.class_names = class_names
        self.modality_weights = modality_weights
        self.features = features

    def to_dict(self):
        return {
            "task": self.task,
            "metrics": self.metrics,
            "per_class": self.per_class,
            "confusion_matrix": None if self.confusion is None else self.confusion.tolist(),
            "class_names": self.class_names,
            "modality_weights": self.modality_weights,
        }

    def table(self):
        lines = []
        if self.per_class:
            width = max(12, *(len(str(r["name"])) + 2 for r in self.per_class))
            lines.append(f"{'':<{width}}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}")
            for row in self.per_class:
                lines.append(f"{str(row['name']):<{width}}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10d}")
            lines.append("")
            total = int(sum(r["support"] for r in self.per_class))
            lines.append(f"{'accuracy':<{width}}{'':>20}{self.metrics['accuracy']:>10.3f}{total:>10d}")
            lines.append(
                f"{'macro avg':<{width}}{self.metrics['macro_precision']:>10.3f}{self.metrics['macro_recall']:>10.3f}"
                f"{self.metrics['macro_f1']:>10.3f}{total:>10d}"
            )
        for key, value in self.metrics.items():
            if not self.per_class or key not in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
                lines.append(f"{key:<24}{value:.4f}")
        if self.modality_weights:
            lines.append("mean modality weights: " + ", ".join(f"{k}={v:.3f}" for k, v in self.modality_weights["overall"].items()))
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def _repr_html_(self):
        """Jupyter's view: the tables as HTML and the plots inline (base64 PNG), with nothing written to disk."""
        parts = [f"<h4>Evaluation ({html.escape(str(self.task))})</h4>"]
        if self.per_class:
            header = "".join(f"<th>{h}</th>" for h in ("", "precision", "recall", "f1-score", "support"))
            rows = "".join(
                f"<tr><td>{html.escape(str(r['name']))}</td><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td>"
                f"<td>{r['f1']:.3f}</td><td>{int(r['support'])}</td></tr>" for r in self.per_class
            )
            parts.append(f"<table><tr>{header}</tr>{rows}</table>")
        parts.append("<table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in self.metrics.items()) + "</table>")
        if self.modality_weights:
            weights = ", ".join(f"{html.escape(k)}={v:.3f}" for k, v in self.modality_weights["overall"].items())
            parts.append(f"<p>mean modality weights: {weights}</p>")
        figures = []
        if self.confusion is not None:
            figures.append(self._plot_confusion(_FigureFactory))
        if self.modality_weights:
            figures.append(self._plot_modality_weights(_FigureFactory))
        parts.extend(f'<img src="data:image/png;base64,{_png_base64(fig)}"/>' for fig in figures)
        return "\n".join(parts)

    def save_plots(self, output_dir, history=None):
        """Write PNGs (confusion matrix, modality weights, training curves) and ``report.json``; return the paths.

        Example:
            >>> import os, tempfile
            >>> from keras_mm.evaluation.report import EvaluationReport
            >>> report = EvaluationReport("classification", {"accuracy": 0.75}, confusion=np.array([[2, 1], [0, 1]]),
            ...                           class_names=["cat", "dog"])
            >>> paths = report.save_plots(tempfile.mkdtemp(), history={"loss": [0.9, 0.6, 0.5]})
            >>> [os.path.basename(p) for p in paths]
            ['confusion_matrix.png', 'training_curves.png', 'report.json']
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(output_dir, exist_ok=True)
        figures = []
        if self.confusion is not None:
            figures.append(("confusion_matrix.png", self._plot_confusion(plt)))
        if self.modality_weights:
            figures.append(("modality_weights.png", self._plot_modality_weights(plt)))
        if history is not None:
            figures.append(("training_curves.png", _plot_history(plt, history)))
        paths = []
        for name, fig in figures:
            fig.tight_layout()
            paths.append(os.path.join(output_dir, name))
            fig.savefig(paths[-1], dpi=120)
            plt.close(fig)
        with open(os.path.join(output_dir, "report.json"), "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        paths.append(os.path.join(output_dir, "report.json"))
        return paths

    def _plot_confusion(self, plt):
        names = self.class_names or [str(i) for i in range(len(self.confusion))]
        # at least 4.5 x 4 in: with 3 classes the title ("Confusion matrix (accuracy 1.000)") was cut off
        fig, ax = plt.subplots(figsize=(max(4.5, 1.0 + 0.55 * len(names)), max(4.0, 0.8 + 0.5 * len(names))))
        image = ax.imshow(self.confusion, cmap="Blues")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"Confusion matrix (accuracy {self.metrics['accuracy']:.3f})")
        for (i, j), count in np.ndenumerate(self.confusion):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > self.confusion.max() / 2 else "black", fontsize=8)
        fig.colorbar(image, ax=ax)
        return fig

    def _plot_modality_weights(self, plt):
        per_class = self.modality_weights.get("per_class")
        fig, ax = plt.subplots(figsize=(8, 3.5))
        features = list(self.modality_weights["overall"])
        if per_class:
            groups = list(per_class)
            width = 0.8 / len(features)
            for k, feature in enumerate(features):
                bars = ax.bar(np.arange(len(groups)) + k * width, [per_class[g][feature] for g in groups], width,
                              label=f"{feature} (mean {self.modality_weights['overall'][feature]:.3f})")
                # values written on the bars: a weight near 0 draws no visible bar at all
                ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
            ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, rotation=45, ha="right")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: it hid the last bars
        else:
            bars = ax.bar(features, [self.modality_weights["overall"][f] for f in features])
            ax.bar_label(bars, fmt="%.3f", fontsize=8)
        ax.set_ylim(0.0, 1.15)  # weights are softmax shares: one scale for every model, room for the labels
        ax.set_ylabel("mean attention weight")
        ax.set_title("Which modality the model relied on" + (" (by true class)" if per_class else ""))
        return fig


class _FigureFactory:
    """``plt.subplots`` without pyplot: figures for inline HTML that no backend shows or keeps open."""

    @staticmethod
    def subplots(nrows=1, ncols=1, figsize=None, **kwargs):
        from matplotlib.figure import Figure

        figure = Figure(figsize=figsize)
        return figure, figure.subplots(nrows, ncols, **kwargs)


def _png_base64(figure):
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_history(plt, history):
    logs = history.history if hasattr(history, "history") else history
    keys = [k for k in logs if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot(range(1, len(logs[key]) + 1), logs[key], label="train")
        if f"val_{key}" in logs:
            ax.plot(range(1, len(logs[f"val_{key}"]) + 1), logs[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("_", " "))
        ax.set_title(key)
        ax.legend()
    return fig


def evaluate(model, dataset, class_names=None, output_dir=None, history=None, verbose=True):
    """Evaluate a trained model: metrics, per-class table, confusion matrix, ROC-AUC, plots.

    Args:
        model: a :class:`MultimodalModel` with a head.
        dataset: ``(numeric_inputs, labels)`` batches (e.g. ``from_manifest(..., model=model)``).
        class_names: names for the table and plots (default: the head's ``class_names``; names given
            for a model that has its own must be the same list).
        output_dir: if given, write PNG plots and ``report.json`` there.
        history: a training history, plotted as curves when ``output_dir`` is given.
        verbose: print one summary line; the table is ``print(report)`` (or the
            report ending a notebook cell), so it is never printed twice.

    Returns:
        an :class:`EvaluationReport`.

    Example:
        >>> import tempfile
        >>> model = keras_mm.build_model(preset="tiny_attention", num_classes=3)  # train it first, in practice
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(12))
        >>> test_ds = tf.data.Dataset.from_tensors((x, np.arange(12) % 3))  # or from_manifest(..., model=model)
        >>> report = keras_mm.evaluate(model, test_ds, output_dir=tempfile.mkdtemp(), verbose=False)
        >>> sorted(report.metrics), report.confusion.shape  # print(report) shows the table
        (['accuracy', 'macro_f1', 'macro_precision', 'macro_recall'], (3, 3))
        >>> sorted(report.modality_weights["overall"])  # mean attention weight per feature
        ['audio', 'image', 'text']
    """
    if model.head is None:
        raise ValueError("evaluate needs a model with a head; an embedding model (head=None) has no labels to score.")
    labels, outputs, extras = collect_predictions(model, dataset)
    evaluation = model.head.evaluate_outputs(labels, outputs, model_class_names(model, class_names))
    task = model.head.registered_name_in_zoo or type(model.head).__name__
    per_class, confusion, metrics, class_names = evaluation.per_class, evaluation.confusion, evaluation.metrics, evaluation.class_names
    modality_weights = None
    if "modality_weights" in extras:
        weights = extras["modality_weights"]
        modality_weights = {"overall": {f: float(weights[:, i].mean()) for i, f in enumerate(model.features)}}
        if per_class is not None:
            ids = np.asarray(labels).reshape(-1).astype(int)
            modality_weights["per_class"] = {
                class_names[c]: {f: float(weights[ids == c, i].mean()) for i, f in enumerate(model.features)}
                for c in range(len(class_names)) if (ids == c).any()
            }
    report = EvaluationReport(task, metrics, per_class, confusion, class_names, modality_weights, model.features)
    if output_dir is not None:
        report.save_plots(output_dir, history)
    if verbose:
        metric = model.head.primary_metric
        print(f"evaluate: {metric} {metrics[metric]:.4f} on {len(labels)} samples; print(report) for the table"
              + (f", plots in {output_dir}" if output_dir is not None else ""))
    return report
