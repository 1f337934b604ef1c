"""Reports print once, and the plots say what they show (issue 14, first-run experience)."""

import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.evaluation.report import EvaluationReport, _plot_history
from keras_mm.evaluation.robustness import RobustnessReport
from tests.conftest import tiny_encoders

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def model_and_data():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion={"name": "attention", "projection_dim": 8}, num_classes=3)
    x = {k: v.numpy() for k, v in model.preprocessor.process_batch(model.preprocessor.example_raw(12)).items()}
    y = np.arange(12) % 3
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(6), x, y


def test_evaluate_and_robustness_print_one_line_and_the_table_only_on_request(model_and_data, capsys, tmp_path):
    model, ds, _, _ = model_and_data
    report = keras_mm.evaluate(model, ds, output_dir=str(tmp_path))
    robustness = keras_mm.evaluate_robustness(model, ds, noise_levels=(0.0,))
    printed = capsys.readouterr().out
    assert printed.count("\n") == 2, printed
    assert printed.startswith("evaluate: accuracy ") and "evaluate_robustness: accuracy " in printed
    assert "macro avg" not in printed and "without image" in printed  # the summary, not the table
    assert "macro avg" in str(report) and "only audio" in str(robustness)


def test_only_scores_are_the_model_with_every_other_modality_missing(model_and_data):
    model, ds, x, y = model_and_data
    report = keras_mm.evaluate_robustness(model, ds, noise_levels=(0.0,), verbose=False)
    text_only = {**x, "image_present": np.zeros(len(y), "float32"), "audio_present": np.zeros(len(y), "float32")}
    expected = (model.predict(text_only, verbose=0).argmax(-1) == y).mean()
    assert sorted(report.only) == ["audio", "image", "text"]
    assert report.only["text"] == pytest.approx(expected)
    assert report.to_dict()["only"] == report.only


def test_robustness_bars_are_red_only_where_the_score_dropped_and_axes_start_at_zero(tmp_path):
    report = RobustnessReport("accuracy", 0.92, {"image": 0.93, "text": 0.92, "audio": 0.5}, {"audio": {0.0: 0.92, 0.5: 0.95}},
                              only={"image": 0.3})
    assert report.bar_colors() == ["tab:blue", "tab:green", "tab:green", "tab:red", "tab:red"]
    mae = RobustnessReport("mae", 1.0, {"image": 1.5, "text": 0.9}, {})
    assert mae.bar_colors() == ["tab:blue", "tab:red", "tab:green"]  # for an error, growing is worse
    report.save_plot(str(tmp_path))
    figure, (left, right) = plt.subplots(1, 2)
    report._set_score_limits(left, [0.92, 0.95])
    assert left.get_ylim() == (0.0, 1.05)  # a 0.92-0.95 range must not look like a collapse
    plt.close(figure)


def test_training_curves_label_their_axes_and_modality_weights_show_their_values():
    figure = _plot_history(plt, {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]})
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "accuracy"]
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["train", "validation"]
    plt.close(figure)
    weights = {"overall": {"image": 0.001, "text": 0.999}, "per_class": {"a": {"image": 0.002, "text": 0.998}}}
    report = EvaluationReport("classification", {"accuracy": 1.0}, modality_weights=weights)
    figure = report._plot_modality_weights(plt)
    labels = [t.get_text() for t in figure.axes[0].texts]
    assert "0.00" in labels and "1.00" in labels  # a near-zero weight is still written on the plot
    plt.close(figure)
