"Tokenizer checks too slow or too network-bound for the notebook: GPT-2's real files against Hugging Face, many random strings."
import functools, json, shutil, tempfile
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st
from llm_nb.data import load_corpus, split_documents
from llm_nb.tokenizer import BPETokenizer, GPT2_SPLIT_PATTERN, gpt2_encoding, gpt2_files

@pytest.fixture(scope="module")
def split():
    train, val = split_documents(load_corpus("shakespeare"), val_frac=0.1, seed=0)
    return [d.text for d in train], "\n".join(d.text for d in val)

@pytest.fixture(scope="module")
def tok(split): return BPETokenizer.train(split[0], 2048)

def test_python_encoder_matches_tiktoken(tok, split):
    "The pure-Python encoder and tiktoken agree on the whole validation text, with both split patterns."
    val = split[1]
    assert tok.encode_py(val) == tok.encode(val)
    tok2 = BPETokenizer.train(split[0][:10], 1024, pattern=GPT2_SPLIT_PATTERN)
    assert tok2.encode_py(val) == tok2.encode(val)

@functools.cache
def small_tok(): return BPETokenizer.train("naïve café 日本語 🤗 the quick brown fox\r\n\t" * 20 + "to be or not to be " * 50, 300)

@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_roundtrip_any_text(s):
    tok = small_tok()
    ids = tok.encode(s)
    assert tok.decode(ids) == s and tok.encode_py(s) == ids


def test_save_load(tok, tmp_path):
    tok2 = BPETokenizer.load(tok.save(tmp_path/"t.json"))
    assert tok2.encode("<|im_start|>user\nHello<|im_end|>", allowed_special="all") == tok.encode("<|im_start|>user\nHello<|im_end|>", allowed_special="all")
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]

def test_gpt2_matches_hugging_face(split):
    "GPT-2's encoding from its real files gives the same ids as Hugging Face's GPT2TokenizerFast."
    from transformers import GPT2TokenizerFast
    vocab_bpe, encoder_json = gpt2_files()
    enc = gpt2_encoding(vocab_bpe, encoder_json)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(encoder_json, Path(tmp)/"vocab.json"); shutil.copy(vocab_bpe, Path(tmp)/"merges.txt")
        hf = GPT2TokenizerFast.from_pretrained(tmp)
    text = split[1] + " naïve café 日本語 👩‍👩‍👧 \u00a0\u2028\r\n\t 12345 it's IT'S  <|endoftext|>  "
    ids = enc.encode(text, allowed_special="all")
    assert ids == hf(text, verbose=False)["input_ids"]
    assert enc.decode(ids) == text
    assert json.loads(encoder_json.read_text(encoding="utf-8"))["<|endoftext|>"] == enc.eot_token == 50256
