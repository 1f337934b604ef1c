import json
import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

import keras_mm
from keras_mm.encoders import BertEncoder, read_bert_checkpoint
from keras_mm.preprocessing import BertTextPreprocessor, read_vocabulary
from keras_mm.testing import run_serialization_test
from tests.encoders.bert_reference import bert_sequence_output, load_reference

# Varied sentences: accents, control and zero-width characters, CJK, emoji,
# unusual whitespace, punctuation, numbers, long words, truncation.
SENTENCES = [
    "Hello, World!", "The quick brown fox jumps over the lazy dog.", "Héllo wörld café naïve résumé",
    "zero\u200bwidth\u200djoiner\u200c", "ctrl\x07char\x00nul\ttab\nnewline\rcr", "中文字符测试 and 日本語のテキスト",
    "emoji 😀🎉👍🏽 ok", "İstanbul ΑΘΗΝΑ Ελλάδα", "don't stop-believing...!!", "", "   ", "a" * 120,
    "unaffable antidisestablishmentarianism", "x\u00a0y\u3000z\u2028w\u2029v", "\ufeffBOM text",
    "ﬁ ligature ＦＵＬＬ width", "Crème brûlée costs $5.99 (approx.)", "Привет мир, как дела?", "한국어 텍스트 처리",
    "tab\x0bvt\x0cff\x85nel", "\ue000private use area", "a " * 200, "MiXeD CaSe WoRdS", "e-mail: someone@example.com",
    "https://example.org/path?query=1&x=2", "C++ and C# are languages; so is F#.", "3.14159 26535 89793",
    "1,000,000 dollars", "We're here—aren't we?", "“Curly quotes” and ‘single’ ones", "Ünïcödé façade coöperate",
    "Ça va? Très bien.", "español: ¿Dónde está la biblioteca?", "ß straße Maße", "Œuvre æther ø å",
    "ＡＢＣ１２３", "ﾃｽﾄ half-width katakana", "Tiếng Việt có dấu", "עברית מימין לשמאל", "العربية نص",
    "हिन्दी पाठ", "ไทย ภาษา", "a\u0301 combining acute", "trailing spaces   ", "   leading spaces",
    "multiple     spaces", "new\n\nlines\n", "mix of\ttabs\tand spaces", "(parentheses) [brackets] {braces}",
    "<html><body>markup</body></html>", "#hashtag @mention", "snake_case and kebab-case", "CamelCaseIdentifier",
    "numbers123mixed456", "ellipsis… and dash – —", "°C ± µm ×÷", "☃ ★ ♥ symbols", "\U0001d400 math bold",
    "soft\u00adhyphen", "replacement \ufffd char", "bidi \u202etext\u202c", "variation\ufe0f selector",
]


@pytest.fixture(scope="module")
def minilm_encoder(minilm_path):
    return BertEncoder(checkpoint=minilm_path, sequence_length=32, pooling="cls")


def test_checkpoint_metadata_is_read(minilm_path):
    info = read_bert_checkpoint(minilm_path)
    assert info["architecture"]["hidden_dim"] == 384 and info["architecture"]["num_layers"] == 6
    assert info["exact_gelu"] is True and info["lowercase"] is True
    assert len(info["vocabulary"]) == 30522


def test_token_ids_identical_to_hf_fast_tokenizer(minilm_path):
    length = 24
    hf = Tokenizer.from_file(os.path.join(minilm_path, "tokenizer.json"))
    hf.enable_truncation(length)
    hf.enable_padding(length=length, pad_id=0)
    pre = BertTextPreprocessor("text", read_vocabulary(os.path.join(minilm_path, "vocab.txt")), sequence_length=length)
    out = pre.process_batch(tf.constant(SENTENCES))
    ids, mask = out["text_token_ids"].numpy(), out["text_padding_mask"].numpy()
    mismatches = [s for s, row in zip(SENTENCES, ids) if list(row) != hf.encode(s).ids]
    assert not mismatches, mismatches
    masks = [hf.encode(s).attention_mask for s in SENTENCES]
    np.testing.assert_array_equal(mask, np.array(masks))
    assert (ids[:, 0] == 101).all()  # [CLS]


def test_graph_path_inside_tf_data_gives_the_same_ids(minilm_path):
    """tf.data and serving trace the preprocessor into a graph: check that path too."""
    pre = BertTextPreprocessor("text", read_vocabulary(os.path.join(minilm_path, "vocab.txt")), sequence_length=24)
    eager = pre.process_batch(tf.constant(SENTENCES))["text_token_ids"].numpy()
    ds = tf.data.Dataset.from_tensor_slices(SENTENCES).batch(16).map(lambda t: pre.process_batch(t)["text_token_ids"])
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in ds]), eager)


def test_cased_token_ids_identical_to_hf(minilm_path):
    vocab_file = os.path.join(minilm_path, "vocab.txt")
    hf = BertWordPieceTokenizer(vocab_file, lowercase=False, strip_accents=None)
    hf.enable_truncation(24)
    hf.enable_padding(length=24, pad_id=0)
    pre = BertTextPreprocessor("t", read_vocabulary(vocab_file), sequence_length=24, lowercase=False)
    ids = pre.process_batch(tf.constant(SENTENCES))["t_token_ids"].numpy()
    mismatches = [s for s, row in zip(SENTENCES, ids) if list(row) != hf.encode(s).ids]
    assert not mismatches, mismatches


def test_single_example_matches_batch(minilm_encoder):
    pre = minilm_encoder.build_preprocessor("text")
    model_pre = keras_mm.preprocessing.MultimodalPreprocessor({"text": pre})
    single = model_pre({"text": tf.constant("Héllo wörld")})
    batch = model_pre({"text": tf.constant(["Héllo wörld", "x"])})
    np.testing.assert_array_equal(single["text_token_ids"].numpy(), batch["text_token_ids"].numpy()[0])


def _embed(encoder, texts, pooling_input=None):
    pre = encoder.build_preprocessor("text")
    numeric = pre.process_batch(tf.constant(texts))
    inputs = {k.removeprefix("text_"): v for k, v in numeric.items()}
    return inputs, keras.ops.convert_to_numpy(encoder(inputs))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_embeddings_match_numpy_reference(minilm_path, pooling):
    encoder = BertEncoder(checkpoint=minilm_path, sequence_length=32, pooling=pooling)
    texts = ["A man is playing a guitar.", "Ünïcödé façade, 中文 and emoji 😀", "short", ""]
    inputs, ours = _embed(encoder, texts)
    weights, config = load_reference(minilm_path)
    ids, mask = inputs["token_ids"].numpy(), inputs["padding_mask"].numpy()
    sequence = bert_sequence_output(weights, config, ids, mask)
    if pooling == "cls":
        reference = sequence[:, 0]
    else:
        reference = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    assert np.abs(ours - reference).max() <= 1e-5


def test_padding_is_cut_to_the_batch_longest_text_with_the_same_output(minilm_path):
    """Short texts padded to 128 run the transformer over 8 positions; XLA and exports keep all 128."""
    from keras_mm.encoders.bert import without_trailing_padding
    from keras_mm.layers.graph_context import portable_graph

    encoder = BertEncoder(checkpoint=minilm_path, sequence_length=128)  # mean pooling (the checkpoint's own)
    inputs, trimmed = _embed(encoder, ["A man is playing a guitar.", "short", ""])
    seen = []
    backbone_call = encoder.backbone.call
    encoder.backbone.call = lambda x, **kw: seen.append(x["token_ids"].shape[1]) or backbone_call(x, **kw)
    encoder(inputs)
    with portable_graph():  # what export_tflite / export_onnx trace
        full = tf.function(encoder)(inputs).numpy()
    compiled = tf.function(encoder, jit_compile=True)(inputs).numpy()
    assert seen[0] == 16 and seen[1:] == [128, 128], seen  # 9 tokens rounded up to 16
    assert np.abs(trimmed - full).max() <= 1e-5
    assert np.abs(compiled - full).max() <= 1e-5
    # the sequence (token-level fusions) keeps its static length
    assert encoder(inputs, return_sequence=True)["sequence"].shape[1] == 128
    assert without_trailing_padding({"padding_mask": np.zeros((0, 128), "int32")})["padding_mask"].shape == (0, 8)
    boolean = {k: (v if k != "padding_mask" else tf.cast(v, tf.bool)) for k, v in inputs.items()}  # keras-hub's masks
    assert np.abs(encoder(boolean).numpy() - full).max() <= 1e-5
    cut = without_trailing_padding({"padding_mask": np.array([[0, 0, 0, 0, 1, 0]]), "ids": np.ones((1, 6))}, multiple=4)
    assert cut["ids"].shape == (1, 6)  # a set position after padding is kept; never longer than the input


def test_approximate_gelu_would_not_meet_the_bar(minilm_path):
    """Guards the exact-GELU switch: with tanh GELU the error is ~1e-3, far above 1e-5."""
    encoder = BertEncoder(checkpoint=minilm_path, sequence_length=16)
    approx = BertEncoder.from_config({**encoder.get_config(), "exact_gelu": False})
    inputs, exact_out = _embed(encoder, ["A man is playing a guitar."])
    approx(inputs)
    approx.set_weights(encoder.get_weights())
    assert np.abs(keras.ops.convert_to_numpy(approx(inputs)) - exact_out).max() > 1e-4


def test_exact_gelu_survives_keras_reload(minilm_path, tmp_path):
    model = keras_mm.build_model(
        encoders={"text": {"name": "bert", "checkpoint": minilm_path, "sequence_length": 16, "pooling": "mean"}},
        fusion="concat", head=None, feature_normalization=None,  # the output is the encoder's own
    )
    raw = {"text": np.array(["A man is playing a guitar.", "Ünïcödé façade"], dtype=object)}
    inputs = model.preprocessor.process_batch(raw)
    restored = run_serialization_test(model, inputs, atol=1e-6)
    assert restored.feature_encoders["text"].exact_gelu is True
    assert restored.feature_encoders["text"].get_config()["checkpoint"] is None
    weights, config = load_reference(minilm_path)
    ids, mask = inputs["text_token_ids"].numpy(), inputs["text_padding_mask"].numpy()
    sequence = bert_sequence_output(weights, config, ids, mask)
    reference = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    assert np.abs(restored.predict(inputs, verbose=0) - reference).max() <= 1e-5
    # the reloaded model's preprocessor still tokenizes (vocabulary travels in the config)
    np.testing.assert_array_equal(
        restored.preprocessor.process_batch(raw)["text_token_ids"].numpy(), inputs["text_token_ids"].numpy()
    )


def test_pooled_output_and_frozen_pooler(minilm_path):
    pooled = BertEncoder(checkpoint=minilm_path, sequence_length=16, pooling="pooled")
    cls = BertEncoder(checkpoint=minilm_path, sequence_length=16, pooling="cls")
    assert pooled.backbone.pooled_dense.trainable and not cls.backbone.pooled_dense.trainable
    _, out = _embed(pooled, ["hello"])
    assert out.shape == (1, 384) and np.abs(out).max() <= 1.0  # tanh pooler


def test_keras_hub_preset_directory(tmp_path):
    vocab = BertEncoder.example_config["vocabulary"]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=32
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    tokenizer.save_to_preset(preset)
    encoder = BertEncoder(checkpoint=preset, sequence_length=8)
    assert encoder.exact_gelu is False and encoder.vocabulary == vocab
    for ours, theirs in zip(encoder.backbone.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_sequence_length_longer_than_positions_is_rejected(minilm_path):
    with pytest.raises(ValueError, match="sequence_length=1000 exceeds the model's max_sequence_length=512"):
        BertEncoder(checkpoint=minilm_path, sequence_length=1000)


def test_checkpoint_without_weights_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="has no model.safetensors"):
        BertEncoder(checkpoint=str(tmp_path))


def test_pooling_auto_is_the_sentence_transformers_checkpoints_own(minilm_path, tmp_path):
    # all-MiniLM-L6-v2 is trained with mean pooling; its CLS state gave 0.728 vs 0.811 on a real task
    assert BertEncoder(checkpoint=minilm_path, sequence_length=8).pooling == "mean"
    assert BertEncoder(checkpoint=minilm_path, sequence_length=8, pooling="cls").pooling == "cls"
    assert BertEncoder(**BertEncoder.example_config).pooling == "cls"  # random init
    # a plain Hugging Face directory (no modules.json) keeps the first-token state
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(minilm_path, plain, ignore=shutil.ignore_patterns("modules.json", "1_Pooling", "2_Normalize"))
    assert BertEncoder(checkpoint=str(plain), sequence_length=8).pooling == "cls"
    with pytest.raises(ValueError, match="pooling='max' is not supported for bert. Allowed: cls, pooled, mean, auto"):
        BertEncoder(checkpoint=minilm_path, pooling="max")
