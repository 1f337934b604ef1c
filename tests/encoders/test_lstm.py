import numpy as np

import keras_mm
from keras_mm.preprocessing import build_vocabulary


def test_build_vocabulary_orders_by_frequency():
    vocab = build_vocabulary(["a good film", "a bad film", "A film!"], max_tokens=10)
    assert vocab[:2] == ["film", "a"] and set(vocab) == {"film", "a", "good", "bad"}


def test_vocabulary_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("good\nbad\nfilm\n")
    model = keras_mm.build_model(encoders={"review": {"name": "lstm", "vocabulary": str(path), "sequence_length": 5}}, head="binary")
    ids = model.preprocessor.process_batch({"review": np.array(["Good FILM, unknown"], dtype=object)})
    np.testing.assert_array_equal(ids["review_token_ids"].numpy(), [[2, 4, 1, 0, 0]])
    np.testing.assert_array_equal(ids["review_padding_mask"].numpy(), [[1, 1, 1, 0, 0]])


def test_lstm_learns_a_word_rule():
    texts = ["good film", "great film", "bad film", "awful film"] * 8
    labels = np.array([1, 1, 0, 0] * 8)
    vocab = build_vocabulary(texts)
    model = keras_mm.build_model(
        encoders={"review": {"name": "lstm", "vocabulary": vocab, "sequence_length": 4, "units": 8, "embedding_dim": 8}},
        head="binary",
    )
    x = model.preprocessor.process_batch({"review": np.array(texts, dtype=object)})
    model.compile(optimizer="adam")
    model.fit(x, labels, epochs=40, batch_size=8, verbose=0)
    assert model.evaluate(x, labels, verbose=0)[1] == 1.0
