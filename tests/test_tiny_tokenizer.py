"""The committed tokenizer of the tiny random models (socialite_utils/assets/tiny_tokenizer.json): regenerating it
gives the same bytes, and both tiny models (the tiny-random Llama, the tiny encoder baseline) load it."""

from __future__ import annotations

from socialite_utils import tiny_tokenizer as T
from socialite_utils.baselines.encoder import build_tiny_encoder
from socialite_utils.models import build_tiny_model, load_tiny_tokenizer


def test_regenerating_the_committed_tokenizer_gives_the_same_bytes(tmp_path):
    # If this fails after a change to the corpus or the settings: `python -m socialite_utils.tiny_tokenizer`
    # rewrites the committed file; commit it.
    out = T.write_tiny_tokenizer(tmp_path / "tok.json")
    assert out.read_bytes() == T.TINY_TOKENIZER_FILE.read_bytes()


def test_both_tiny_models_load_the_committed_vocabulary():
    llama_tok = load_tiny_tokenizer()
    encoder, encoder_tok = build_tiny_encoder()
    raw = T.load_tiny_tokenizer_file()
    assert llama_tok.get_vocab() == encoder_tok.get_vocab() == raw.get_vocab()
    assert len(raw.get_vocab()) == T.TINY_VOCAB_SIZE
    assert [raw.id_to_token(i) for i in range(4)] == T.TINY_SPECIAL_TOKENS
    assert encoder.config.vocab_size == build_tiny_model(llama_tok).config.vocab_size == T.TINY_VOCAB_SIZE
    assert encoder.config.pad_token_id == encoder_tok.pad_token_id == llama_tok.pad_token_id == 2
    # the Llama's tokenizer adds nothing; the encoder's wraps a text in <s> ... </s> (its CLS / SEP)
    text = "Is this headline clickbait?"
    plain = llama_tok(text)["input_ids"]
    assert encoder_tok(text)["input_ids"] == [0, *plain, 1]
    assert llama_tok.decode(plain) == text


def test_the_corpus_is_the_sample_and_the_prompt_corpus():
    corpus = T.tiny_tokenizer_corpus()
    assert corpus[-len(T.PROMPT_CORPUS) :] == T.PROMPT_CORPUS
    assert (
        "19 Items Anyone Who Loves Burgers Needs To Own" in corpus
    )  # a text of the bundled clickbait sample
