"""EvaluationReport._repr_html_: what a notebook shows for a report (tables and inline plots, no files)."""

import base64
import re

import numpy as np

from keras_mm.evaluation.report import EvaluationReport


def make_report():
    per_class = [{"name": "<cat>", "precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 2},
                 {"name": "dog", "precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}]
    metrics = {"accuracy": 0.75, "macro_precision": 0.75, "macro_recall": 0.75, "macro_f1": 0.667}
    return EvaluationReport("classification", metrics, per_class, np.array([[2, 0], [1, 1]]), ["<cat>", "dog"],
                            {"overall": {"image": 0.3, "text": 0.7}}, ["image", "text"])


def test_the_html_view_has_the_tables_and_the_plots_inline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = make_report()._repr_html_()
    assert "<td>&lt;cat&gt;</td><td>0.500</td><td>1.000</td><td>0.667</td><td>2</td>" in page  # names escaped
    assert "<td>accuracy</td><td>0.7500</td>" in page and "image=0.300, text=0.700" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"/>', page)
    assert len(images) == 2  # confusion matrix, modality weights
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_html_view_leaves_no_open_pyplot_figure():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    make_report()._repr_html_()
    assert plt.get_fignums() == before  # an open figure would be drawn again under the report in a notebook


def test_a_report_without_classes_shows_its_metrics_only():
    page = EvaluationReport("regression", {"mae": 0.25, "rmse": 0.5})._repr_html_()
    assert "<td>mae</td><td>0.2500</td>" in page and "<img" not in page
