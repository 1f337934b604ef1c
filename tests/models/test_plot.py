"""MultimodalModel.plot(): the graph through keras.utils.plot_model, or a message saying what to install."""

import shutil

import pytest

import keras_mm
from keras_mm.models import multimodal_model


@pytest.fixture(scope="module")
def model():
    return keras_mm.build_model(preset="tiny_attention", num_classes=3)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing: apt-get install graphviz (make install)")
def test_plot_writes_the_graph(model, tmp_path):
    diagram = model.plot(tmp_path / "model.png")
    assert (tmp_path / "model.png").read_bytes() == diagram.data == diagram._repr_png_()
    assert diagram.data.startswith(b"\x89PNG") and diagram._repr_svg_() is None
    diagram = model.plot(tmp_path / "model.svg")
    svg = (tmp_path / "model.svg").read_text()
    assert svg == diagram._repr_svg_() and diagram._repr_png_() is None
    assert all(name in svg for name in ("image_encoder", "text_encoder", "audio_encoder", "fusion", "head"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing: apt-get install graphviz (make install)")
def test_plot_without_a_path_returns_a_png_for_the_notebook(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model.plot()._repr_png_().startswith(b"\x89PNG")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_plot_without_graphviz_says_how_to_install_it(model, monkeypatch, tmp_path):
    monkeypatch.setattr(multimodal_model.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"needs Graphviz's `dot` program.*apt-get install graphviz"):
        model.plot(tmp_path / "model.png")
    assert not (tmp_path / "model.png").exists()
