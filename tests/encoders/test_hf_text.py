"""More Hugging Face text checkpoints through keras-hub's converters: tiny checkpoints written here in HF format."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer
from tokenizers.processors import BertProcessing

import keras_mm
from keras_mm.encoders import BertEncoder, read_bert_checkpoint
from tests.encoders.bert_reference import distilbert_sequence_output, load_reference
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
