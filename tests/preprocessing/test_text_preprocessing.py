import numpy as np
import pytest
import tensorflow as tf

from keras_mm.encoders import BertEncoder
from keras_mm.preprocessing import BertTextPreprocessor, normalize_bert_text

VOCAB = BertEncoder.example_config["vocabulary"]


def test_normaliser_rules():
    texts = tf.constant(["Héllo\u200bWörld", "a\tb\nc\u3000d", "x\x00y\x07z", "ΑΘΗΝΑ"])
    out = [t.decode() for t in normalize_bert_text(texts).numpy()]
    assert out == ["helloworld", "a b c d", "xyz", "αθηνα"]
    assert normalize_bert_text(tf.constant(["Héllo"]), lowercase=False).numpy()[0].decode() == "Héllo"


def test_invalid_utf8_does_not_fail_the_batch():
    pre = BertTextPreprocessor("t", VOCAB, sequence_length=6)
    out = pre.process_batch(tf.constant([b"the \xff\xfe dog", b"the dog"]))["t_token_ids"].numpy()
    np.testing.assert_array_equal(out[0], out[1])


def test_truncation_keeps_cls_and_sep_and_padding_mask():
    pre = BertTextPreprocessor("t", VOCAB, sequence_length=5)
    out = pre.process_batch(tf.constant(["the dog sat on the mat", "dog", ""]))
    ids = out["t_token_ids"].numpy()
    cls, sep, pad = VOCAB.index("[CLS]"), VOCAB.index("[SEP]"), VOCAB.index("[PAD]")
    assert ids[0, 0] == cls and ids[0, -1] == sep
    np.testing.assert_array_equal(ids[2], [cls, sep, pad, pad, pad])
    np.testing.assert_array_equal(out["t_padding_mask"].numpy()[1], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(out["t_segment_ids"].numpy(), 0)


def test_vocabulary_must_have_special_tokens():
    with pytest.raises(ValueError, match=r"has no \[CLS\] token"):
        BertTextPreprocessor("t", ["a", "b"])


def test_word_vocabulary_text_treats_unicode_spaces_and_punctuation_like_ascii():
    from keras_mm.preprocessing import VocabularyTextPreprocessor, build_vocabulary

    # invisible-only text is missing, as for BERT; curly quotes do not stick to words
    vocabulary = build_vocabulary(["\u201cfolder\u201d open", "folder\u00a0\u00abclosed\u00bb"])
    assert sorted(vocabulary) == ["closed", "folder", "open"]
    pre = VocabularyTextPreprocessor("text", vocabulary, sequence_length=3)
    out = pre.process_batch(tf.constant(["\u00a0", "\u200b\ufeff", "\u3000", "\u201cfolder\u201d", "folder"]))
    np.testing.assert_array_equal(out["text_present"].numpy(), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(out["text_token_ids"].numpy()[3], out["text_token_ids"].numpy()[4])
