"""Hugging Face text checkpoints (DistilBERT, ALBERT, XLM-RoBERTa) through keras-hub's converters: tiny HF-format checkpoints written here."""

import io
import json

import keras
import numpy as np
import pytest
import sentencepiece
import tensorflow as tf
from safetensors.numpy import save_file
from sentencepiece import sentencepiece_model_pb2
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.implementations import BertWordPieceTokenizer
from tokenizers.models import Unigram
from tokenizers.processors import BertProcessing, TemplateProcessing

import keras_mm
from keras_mm.encoders import BertEncoder, read_bert_checkpoint
from keras_mm.preprocessing import SentencePieceTextPreprocessor
from tests.encoders.bert_reference import (
    albert_sequence_output,
    distilbert_sequence_output,
    load_reference,
    xlm_roberta_sequence_output,
)
from tests.encoders.test_bert import SENTENCES

CORPUS = [
    "the quick brown fox jumps over the lazy dog", "a dog sat on the mat", "cats and dogs are friends",
    "héllo wörld café naïve", "中文 字符 and 日本語", "numbers 123 and 3.14", "don't stop believing!",
] * 20
DIM, LAYERS, HEADS, FFN, POSITIONS = 16, 2, 2, 32, 64


def _distilbert_weights(vocab_size, rng):
    def dense(prefix, n_in, n_out):
        return {f"{prefix}.weight": rng.normal(0, 0.2, (n_out, n_in)), f"{prefix}.bias": rng.normal(0, 0.05, n_out)}

    def norm(prefix):
        return {f"{prefix}.weight": 1 + rng.normal(0, 0.1, DIM), f"{prefix}.bias": rng.normal(0, 0.05, DIM)}

    w = {"embeddings.word_embeddings.weight": rng.normal(0, 0.5, (vocab_size, DIM)),
         "embeddings.position_embeddings.weight": rng.normal(0, 0.5, (POSITIONS, DIM)), **norm("embeddings.LayerNorm")}
    for i in range(LAYERS):
        p = f"transformer.layer.{i}"
        for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
            w.update(dense(f"{p}.attention.{name}", DIM, DIM))
        w.update({**dense(f"{p}.ffn.lin1", DIM, FFN), **dense(f"{p}.ffn.lin2", FFN, DIM)})
        w.update({**norm(f"{p}.sa_layer_norm"), **norm(f"{p}.output_layer_norm")})
    # the Hub layout (saved from DistilBertForMaskedLM) prefixes every key
    return {f"distilbert.{k}": v.astype("float32") for k, v in w.items()}


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("distilbert")
    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(CORPUS, vocab_size=120, min_frequency=1)
    tokenizer.save_model(str(path))  # vocab.txt
    # as in a saved HF checkpoint: "[CLS] text [SEP]" (training alone sets no template)
    tokenizer.post_processor = BertProcessing(("[SEP]", tokenizer.token_to_id("[SEP]")), ("[CLS]", tokenizer.token_to_id("[CLS]")))
    tokenizer.save(str(path / "tokenizer.json"))
    vocab_size = tokenizer.get_vocab_size()
    config = {"model_type": "distilbert", "vocab_size": vocab_size, "dim": DIM, "n_layers": LAYERS, "n_heads": HEADS,
              "hidden_dim": FFN, "max_position_embeddings": POSITIONS, "dropout": 0.1, "activation": "gelu"}
    (path / "config.json").write_text(json.dumps(config))
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    save_file(_distilbert_weights(vocab_size, np.random.default_rng(0)), str(path / "model.safetensors"))
    return str(path)


def test_distilbert_checkpoint_is_read_by_model_type(distilbert_dir):
    info = read_bert_checkpoint(distilbert_dir)
    assert info["model_type"] == "distilbert" and info["exact_gelu"] is True
    assert info["architecture"] == {"vocabulary_size": len(info["vocabulary"]), "num_layers": LAYERS, "num_heads": HEADS,
                                    "hidden_dim": DIM, "intermediate_dim": FFN, "max_sequence_length": POSITIONS}


def test_distilbert_token_ids_identical_to_its_fast_tokenizer(distilbert_dir):
    length = 24
    reference = Tokenizer.from_file(f"{distilbert_dir}/tokenizer.json")
    reference.enable_truncation(length)
    reference.enable_padding(length=length, pad_id=0)
    encoder = BertEncoder(checkpoint=distilbert_dir, sequence_length=length)
    out = encoder.build_preprocessor("t").process_batch(tf.constant(SENTENCES))
    assert "t_segment_ids" not in out  # DistilBERT takes none
    mismatches = [s for s, row in zip(SENTENCES, out["t_token_ids"].numpy()) if list(row) != reference.encode(s).ids]
    assert not mismatches, mismatches


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_distilbert_forward_matches_numpy_reference(distilbert_dir, pooling):
    encoder = BertEncoder(checkpoint=distilbert_dir, sequence_length=16, pooling=pooling)
    numeric = encoder.build_preprocessor("t").process_batch(tf.constant(["The quick dog sat.", "héllo 中文", "cats"]))
    inputs = {k: numeric[f"t_{k}"] for k in encoder.input_signature()}
    ours = keras.ops.convert_to_numpy(encoder(inputs))
    weights, config = load_reference(distilbert_dir)
    ids, mask = inputs["token_ids"].numpy(), inputs["padding_mask"].numpy()
    sequence = distilbert_sequence_output(weights, config, ids, mask)
    reference = sequence[:, 0] if pooling == "cls" else (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    assert np.abs(ours - reference).max() <= 1e-5


def test_distilbert_has_no_pooler(distilbert_dir):
    with pytest.raises(ValueError, match="pooling='pooled' is not supported for distilbert. Allowed: cls, mean"):
        BertEncoder(checkpoint=distilbert_dir, pooling="pooled")


def test_distilbert_model_reloads_without_the_checkpoint(distilbert_dir):
    model = keras_mm.build_model(
        encoders={"text": {"name": "bert", "checkpoint": distilbert_dir, "sequence_length": 12, "pooling": "mean"}},
        fusion="concat", head=None,
    )
    inputs = model.preprocessor.process_batch({"text": np.array(["a dog sat", "cats"], dtype=object)})
    restored = keras_mm.testing.run_serialization_test(model, inputs, atol=1e-6)
    assert restored.feature_encoders["text"].model_type == "distilbert"


# --- SentencePiece families: ALBERT and XLM-RoBERTa -------------------------------------------------------------

SPM_CORPUS = CORPUS + ["prices 1,000,000 and 2,500, 12, 34,5 ok", "``quoted'' text", "Привет мир"] * 20
EXTRA_SENTENCES = [  # ALBERT's own rules: quotes, number-comma pieces, trailing whitespace kept as "▁"
    "``quoted'' text", "12, 34,5 and 1,000,000,", "trailing ", " ", "x\u00a0", "end\x07 ", "end \x07", "ab\x00cd",
    "a \u3000b", "\u2581x\u2581", "Ǆ ǅ ǆ ﬃ", "I\u0307stanbul",
]
ALBERT = {"model_type": "albert", "embedding_size": 8, "hidden_size": DIM, "num_hidden_layers": 4, "num_hidden_groups": 2,
          "inner_group_num": 2, "num_attention_heads": HEADS, "intermediate_size": FFN, "max_position_embeddings": POSITIONS,
          "type_vocab_size": 2, "hidden_act": "gelu_new", "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-12}
XLM_ROBERTA = {"model_type": "xlm-roberta", "hidden_size": DIM, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
               "intermediate_size": FFN, "max_position_embeddings": POSITIONS + 2, "type_vocab_size": 1, "pad_token_id": 1,
               "hidden_act": "gelu", "layer_norm_eps": 1e-5}


def _train_sentencepiece(**special):
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SPM_CORPUS), model_writer=model, vocab_size=140, model_type="unigram",
        character_coverage=1.0, split_by_number=False, hard_vocab_limit=False, num_threads=1, minloglevel=2, **special,
    )
    return model.getvalue()


def _fast_tokenizer(proto, model_type, lowercase=True, keep_accents=False):
    """The fast tokenizer transformers' AlbertConverter / XLMRobertaConverter build from a SentencePiece model."""
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    charsmap = [normalizers.Precompiled(model.normalizer_spec.precompiled_charsmap)]
    if model_type == "albert":
        number_comma = [len(p.piece) >= 2 and p.piece[-1] == "," and p.piece[-2].isdigit() for p in model.pieces]
        vocab = [(p.piece, p.score - 100 * nc) for p, nc in zip(model.pieces, number_comma)]
        tokenizer = Tokenizer(Unigram(vocab, unk_id=model.trainer_spec.unk_id, byte_fallback=False))
        steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
        steps += [] if keep_accents else [normalizers.NFKD(), normalizers.StripAccents()]
        steps += [normalizers.Lowercase()] if lowercase else []
        tokenizer.normalizer = normalizers.Sequence(steps + charsmap + [normalizers.Replace(Regex(" {2,}"), " ")])
        start, end = "[CLS]", "[SEP]"
    else:  # fairseq order: <s> <pad> </s> <unk>, SentencePiece pieces from id 3 on, <mask> last
        vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
        vocab += [(p.piece, p.score) for p in model.pieces[3:]] + [("<mask>", 0.0)]
        tokenizer = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
        tokenizer.normalizer = normalizers.Sequence(
            charsmap + [normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "\u2581")]
        )
        start, end = "<s>", "</s>"
    tokenizer.add_tokens([AddedToken(p.piece, normalized=False, special=p.type == 3) for p in model.pieces if p.type in (3, 4)])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.post_processor = TemplateProcessing(
        single=f"{start} $A {end}", special_tokens=[(t, tokenizer.token_to_id(t)) for t in (start, end)]
    )
    return tokenizer


def _random_weights(shapes, rng):
    return {k: (1 + rng.normal(0, 0.1, s) if k.endswith("LayerNorm.weight") or k.endswith("layer_norm.weight")
                else rng.normal(0, 0.3, s)).astype("float32") for k, s in shapes.items()}


def _linear(prefix, n_in, n_out):
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _norm(prefix, dim=DIM):
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def _albert_shapes(vocab_size):
    e = ALBERT["embedding_size"]
    shapes = {"embeddings.word_embeddings.weight": (vocab_size, e), "embeddings.position_embeddings.weight": (POSITIONS, e),
              "embeddings.token_type_embeddings.weight": (2, e), **_norm("embeddings.LayerNorm", e),
              **_linear("encoder.embedding_hidden_mapping_in", e, DIM), **_linear("pooler", DIM, DIM)}
    for g in range(ALBERT["num_hidden_groups"]):
        for j in range(ALBERT["inner_group_num"]):
            p = f"encoder.albert_layer_groups.{g}.albert_layers.{j}"
            for name in ("query", "key", "value", "dense"):
                shapes.update(_linear(f"{p}.attention.{name}", DIM, DIM))
            shapes.update({**_norm(f"{p}.attention.LayerNorm"), **_linear(f"{p}.ffn", DIM, FFN),
                           **_linear(f"{p}.ffn_output", FFN, DIM), **_norm(f"{p}.full_layer_layer_norm")})
    return {f"albert.{k}": v for k, v in shapes.items()}  # the Hub layout (saved from AlbertForMaskedLM)


def _xlm_roberta_shapes(vocab_size):
    shapes = {"embeddings.word_embeddings.weight": (vocab_size, DIM),
              "embeddings.position_embeddings.weight": (POSITIONS + 2, DIM),
              "embeddings.token_type_embeddings.weight": (1, DIM), **_norm("embeddings.LayerNorm")}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name in ("self.query", "self.key", "self.value", "output.dense"):
            shapes.update(_linear(f"{p}.attention.{name}", DIM, DIM))
        shapes.update({**_norm(f"{p}.attention.output.LayerNorm"), **_linear(f"{p}.intermediate.dense", DIM, FFN),
                       **_linear(f"{p}.output.dense", FFN, DIM), **_norm(f"{p}.output.LayerNorm")})
    return {f"roberta.{k}": v for k, v in shapes.items()}  # the Hub layout (saved from XLMRobertaForMaskedLM)


def _write_spm_checkpoint(path, model_type, proto):
    """A tiny HF-format checkpoint: config.json, model.safetensors, the SentencePiece model and tokenizer.json."""
    tokenizer = _fast_tokenizer(proto, model_type)
    tokenizer.save(str(path / "tokenizer.json"))
    vocab_size = tokenizer.get_vocab_size()
    if model_type == "albert":
        (path / "spiece.model").write_bytes(proto)
        config, shapes = {**ALBERT, "vocab_size": vocab_size}, _albert_shapes(vocab_size)
        (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "keep_accents": False}))
    else:
        (path / "sentencepiece.bpe.model").write_bytes(proto)
        config, shapes = {**XLM_ROBERTA, "vocab_size": vocab_size}, _xlm_roberta_shapes(vocab_size)
    (path / "config.json").write_text(json.dumps(config))
    save_file(_random_weights(shapes, np.random.default_rng(1)), str(path / "model.safetensors"))
    return str(path)


@pytest.fixture(scope="module")
def spm_dirs(tmp_path_factory):
    albert = _train_sentencepiece(pad_id=0, unk_id=1, bos_id=2, eos_id=3, bos_piece="[CLS]", eos_piece="[SEP]",
                                  user_defined_symbols=["[MASK]"])
    xlm_roberta = _train_sentencepiece()  # fairseq's layout: <unk>=0, <s>=1, </s>=2
    return {"albert": _write_spm_checkpoint(tmp_path_factory.mktemp("albert"), "albert", albert),
            "xlm-roberta": _write_spm_checkpoint(tmp_path_factory.mktemp("xlmr"), "xlm-roberta", xlm_roberta)}


@pytest.fixture(scope="module")
def spm_encoders(spm_dirs):
    # ALBERT through its ported tanh pooler, XLM-RoBERTa (no pooler) by mean; "cls" is checked on the sequence
    return {"albert": BertEncoder(checkpoint=spm_dirs["albert"], sequence_length=16, pooling="pooled"),
            "xlm-roberta": BertEncoder(checkpoint=spm_dirs["xlm-roberta"], sequence_length=16, pooling="mean")}


@pytest.mark.parametrize("model_type", ["albert", "xlm-roberta"])
def test_sentencepiece_checkpoint_is_read_by_model_type(spm_dirs, model_type):
    info = read_bert_checkpoint(spm_dirs[model_type])
    spm_file = "spiece.model" if model_type == "albert" else "sentencepiece.bpe.model"
    assert info["model_type"] == model_type and info["vocabulary"] is None
    assert info["sentencepiece_model"] == open(f"{spm_dirs[model_type]}/{spm_file}", "rb").read()
    assert info["exact_gelu"] is (model_type == "xlm-roberta")  # ALBERT's gelu_new is the tanh form
    assert info["lowercase"] is (model_type == "albert")
    expected = {"num_layers": 4, "embedding_dim": 8, "num_groups": 2, "num_inner_repetitions": 2, "num_segments": 2,
                "max_sequence_length": POSITIONS} if model_type == "albert" else {"num_layers": LAYERS, "max_sequence_length": POSITIONS}
    assert expected.items() <= info["architecture"].items()


@pytest.mark.parametrize("model_type, lowercase, keep_accents", [
    ("albert", True, False), ("albert", False, True), ("albert", False, False), ("xlm-roberta", False, False)])
def test_sentencepiece_token_ids_identical_to_fast_tokenizer(spm_dirs, model_type, lowercase, keep_accents):
    length = 24
    proto = read_bert_checkpoint(spm_dirs[model_type])["sentencepiece_model"]
    reference = _fast_tokenizer(proto, model_type, lowercase, keep_accents)
    reference.enable_truncation(length)
    reference.enable_padding(length=length, pad_id=reference.token_to_id("<pad>"))
    if model_type == "albert":  # the number-comma rule is exercised: the vocabulary has such pieces
        assert any(len(t) > 1 and t[-1] == "," and t[-2].isdigit() for t in reference.get_vocab())
    pre = SentencePieceTextPreprocessor("t", proto, model_type, length, lowercase=lowercase, keep_accents=keep_accents)
    sentences = SENTENCES + EXTRA_SENTENCES
    out = pre.process_batch(tf.constant(sentences))
    assert ("t_segment_ids" in out) is (model_type == "albert")
    encodings = [reference.encode(s) for s in sentences]
    mismatches = [s for s, row, e in zip(sentences, out["t_token_ids"].numpy(), encodings) if list(row) != e.ids]
    assert not mismatches, mismatches
    np.testing.assert_array_equal(out["t_padding_mask"].numpy(), [e.attention_mask for e in encodings])
    # whitespace-only text is missing even where HF keeps a lone "▁"
    assert out["t_present"].numpy()[[sentences.index(""), sentences.index("   "), sentences.index(" ")]].tolist() == [0, 0, 0]


@pytest.mark.parametrize("model_type", ["albert", "xlm-roberta"])
def test_sentencepiece_drops_invalid_utf8_and_says_so(spm_dirs, model_type):
    from keras_mm.preprocessing.status import status_names

    proto = read_bert_checkpoint(spm_dirs[model_type])["sentencepiece_model"]
    pre = SentencePieceTextPreprocessor("t", proto, model_type, 16)
    # a Latin-1 byte inside text, invalid bytes alone, and a literal U+FFFD (valid UTF-8, kept as HF keeps it)
    out, status = pre.process_batch_with_status(tf.constant([b"the c\xe9at", b"\xe9\xff", "a \ufffd".encode()]))
    assert status_names(status).numpy().tolist() == [b"invalid_utf8", b"undecodable", b"ok"]
    assert out["t_present"].numpy().tolist() == [1, 0, 1]
    clean = pre.process_batch(tf.constant(["the cat"]))["t_token_ids"].numpy()[0]
    np.testing.assert_array_equal(out["t_token_ids"].numpy()[0], clean)


def test_sentencepiece_graph_path_inside_tf_data_gives_the_same_ids(spm_encoders):
    pre = spm_encoders["albert"].build_preprocessor("t")
    eager = pre.process_batch(tf.constant(SENTENCES))["t_token_ids"].numpy()
    ds = tf.data.Dataset.from_tensor_slices(SENTENCES).batch(16).map(lambda t: pre.process_batch(t)["t_token_ids"])
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in ds]), eager)


@pytest.mark.parametrize("model_type", ["albert", "xlm-roberta"])
def test_sentencepiece_forward_matches_numpy_reference(spm_dirs, spm_encoders, model_type):
    encoder = spm_encoders[model_type]
    numeric = encoder.build_preprocessor("t").process_batch(tf.constant(["The quick dog sat.", "héllo 1,000 Привет", "cats"]))
    inputs = {k: numeric[f"t_{k}"] for k in encoder.input_signature()}
    ours = {k: keras.ops.convert_to_numpy(v) for k, v in encoder(inputs, return_sequence=True).items()}
    weights, config = load_reference(spm_dirs[model_type])
    ids, mask = inputs["token_ids"].numpy(), inputs["padding_mask"].numpy()
    forward = albert_sequence_output if model_type == "albert" else xlm_roberta_sequence_output
    sequence = forward(weights, config, ids, mask)
    if model_type == "albert":
        pooled = np.tanh(sequence[:, 0] @ weights["albert.pooler.weight"].T + weights["albert.pooler.bias"])
    else:
        pooled = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    assert np.abs(ours["pooled"] - pooled).max() <= 1e-5
    # padding positions differ by design (keras-hub gives them ordinary positions); they are masked everywhere
    assert np.abs((ours["sequence"] - sequence)[mask > 0]).max() <= 1e-5
    assert (mask[:, 0] == 1).all()  # so "cls" pooling (sequence[:, 0]) is covered too


def test_xlm_roberta_has_no_pooler(spm_dirs):
    with pytest.raises(ValueError, match="pooling='pooled' is not supported for xlm-roberta. Allowed: cls, mean"):
        BertEncoder(checkpoint=spm_dirs["xlm-roberta"], pooling="pooled")


@pytest.mark.parametrize("model_type", ["albert", "xlm-roberta"])
def test_sentencepiece_model_reloads_without_the_checkpoint(spm_dirs, model_type):
    model = keras_mm.build_model(
        encoders={"text": {"name": "bert", "checkpoint": spm_dirs[model_type], "sequence_length": 12, "pooling": "mean"}},
        fusion="concat", head=None,
    )
    raw = {"text": np.array(["a dog sat", "Привет 12,5 "], dtype=object)}
    inputs = model.preprocessor.process_batch(raw)
    restored = keras_mm.testing.run_serialization_test(model, inputs, atol=1e-6)
    encoder = restored.feature_encoders["text"]
    assert encoder.model_type == model_type and encoder.sentencepiece_model == model.feature_encoders["text"].sentencepiece_model
    np.testing.assert_array_equal(restored.preprocessor.process_batch(raw)["text_token_ids"], inputs["text_token_ids"])

