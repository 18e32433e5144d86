"""BPE tokenizer benchmark: llm_nb vs Hugging Face `tokenizers`, same text, same vocabulary sizes.

Trains on the whole default corpus (Shakespeare's 42 plays) at each vocabulary size with our trainer (GPT-4 and GPT-2
split patterns) and with the Rust `tokenizers` BPE trainer (ByteLevel pre-tokenizer, i.e. GPT-2's split), then measures
encoding throughput on the same text: our tiktoken encoding, HF `encode_batch`, and our pure-Python `encode_py`.
Prints markdown tables; times are the best of `--repeats` runs. Run: `python bench/bench_tokenizer.py`.
"""
import os, platform, time
from fastcore.script import call_parse
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from llm_nb.data import load_corpus
from llm_nb.tokenizer import BPETokenizer, GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, SPECIAL_TOKENS

def best_of(fn, repeats):
    "Smallest wall time of `repeats` calls of `fn`, and its last result."
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return min(times), out

def hf_train(texts, vocab_size):
    "Hugging Face's Rust BPE trainer with GPT-2's byte-level pre-tokenizer and our special tokens."
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok

@call_parse
def main(sizes:str="4096,8192", # vocabulary sizes, comma separated
         repeats:int=3 # timing runs per measurement (the best is reported)
        ):
    "Print training and encoding speed tables."
    texts = [d.text for d in load_corpus("shakespeare")]
    n_bytes = sum(len(t.encode()) for t in texts)
    print(f"corpus: {len(texts)} documents, {n_bytes / 1e6:.2f} MB; {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}\n")
    print("| vocab | llm_nb GPT-4 split (s) | llm_nb GPT-2 split (s) | HF tokenizers (s) | ratio llm_nb GPT-4 / HF | ratio llm_nb GPT-2 / HF | bytes/token: llm_nb GPT-4, GPT-2, HF |")
    print("|---|---|---|---|---|---|---|")
    for v in map(int, sizes.split(",")):
        t4, ours = best_of(lambda: BPETokenizer.train(texts, v, pattern=GPT4_SPLIT_PATTERN), repeats)
        t2, ours2 = best_of(lambda: BPETokenizer.train(texts, v, pattern=GPT2_SPLIT_PATTERN), repeats)
        th, hf = best_of(lambda: hf_train(texts, v), repeats)
        assert ours.vocab_size == ours2.vocab_size == hf.get_vocab_size() == v
        bpt = [n_bytes / sum(map(len, ids)) for ids in (ours.encode_batch(texts), ours2.encode_batch(texts),
                                                        [e.ids for e in hf.encode_batch(texts)])]
        print(f"| {v} | {t4:.2f} | {t2:.2f} | {th:.2f} | {t4 / th:.2f} | {t2 / th:.2f} | {bpt[0]:.2f}, {bpt[1]:.2f}, {bpt[2]:.2f} |")
    text = "\n".join(texts)
    runs = {"llm_nb `encode` (tiktoken, 1 thread)": lambda: [ours.encode(t) for t in texts],
            "llm_nb `encode_batch` (tiktoken, threads)": lambda: ours.encode_batch(texts),
            "HF tokenizers `encode_batch` (Rust, threads)": lambda: hf.encode_batch(texts),
            "HF tokenizers `encode_batch_fast` (Rust, threads, no offsets)": lambda: hf.encode_batch_fast(texts),
            "llm_nb `encode_py` (pure Python)": lambda: ours.encode_py(text)}
    print(f"\nencoding the corpus with the vocab-{v} tokenizers\n\n| encoder | MB/s | vs `encode_py` |\n|---|---|---|")
    speeds = {name: n_bytes / 1e6 / best_of(fn, repeats)[0] for name, fn in runs.items()}
    for name, mbs in speeds.items(): print(f"| {name} | {mbs:.1f} | {mbs / speeds['llm_nb `encode_py` (pure Python)']:.1f}x |")
