"""Generation speed: llm_nb's `generate` (compiled decode step, eager KV cache, no cache) against transformers' `generate`, same run.

Same weights (`GPT.to_hf()`), greedy decoding (`do_sample=False`, `use_cache=True` for the peer), prompts of
random ids (batch 1: one prompt of `--prompt` tokens; larger batches: left-padded prompts of `--prompt`/2 to
`--prompt` tokens with an attention mask, as in RL rollouts) and a fixed number of new tokens (no stop token).
Runs alternate between the contenders (A B C A B C ...) and the table reports the median, so a busy shared
machine slows all alike; the ratio column (ours / transformers) is what carries over between machines.
A second, very narrow model (`d32`: d=32, vocab 96) has almost no arithmetic: its rows measure the per-step
framework overhead (Python, dispatch, cache bookkeeping) of each implementation.
`only the nn.Linear calls, eager` is no generator: it runs the model's `nn.Linear` layers on one row per sequence as
often as the decode steps do (MKL, as in the eager step), a floor for any eager implementation.
`ours, compiled` is `CompiledDecode(model, max_len=prompt + new)` (torch.compile, frozen weights, max-autotune); its
compile time (first call for each batch size, autotuning included) is printed below the table, not in the rates.

    python bench/bench_generate.py                       # 4 layers, d=256, vocab 4096, prompt 32, 200 new tokens
    python bench/bench_generate.py --models d256 --batches 1 --rounds 5 --threads 2 --dtype bfloat16
"""
import argparse, statistics, time, warnings
import torch
from llm_nb.model import GPT, GPTConfig
from llm_nb.generate import generate, pad_left, CompiledDecode

MODELS = {'d256': GPTConfig(vocab_size=4096, block_size=512, n_layer=4, n_head=4, n_embd=256),
          'd32': GPTConfig(vocab_size=96, block_size=512, n_layer=4, n_head=4, n_embd=32)}

def contenders(model, hf, decoder, ids, mask, n_new):
    "name -> zero-argument function returning the (B, T + n_new) ids"
    ours_mask = None if mask.all() else mask   # the plain path when nothing is padded
    return {'ours, compiled': lambda: generate(model, ids, n_new, temperature=0, attn_mask=ours_mask, decoder=decoder),
            'ours, KV cache': lambda: generate(model, ids, n_new, temperature=0, attn_mask=ours_mask),
            'ours, no cache': lambda: generate(model, ids, n_new, temperature=0, attn_mask=ours_mask, use_cache=False),
            'transformers, KV cache': lambda: hf.generate(ids, attention_mask=mask, max_new_tokens=n_new, min_new_tokens=n_new,
                                                          do_sample=False, use_cache=True, pad_token_id=0),
            'only the nn.Linear calls, eager': lambda: linears_only(model, ids.size(0), n_new)}

@torch.no_grad()
def linears_only(model, B, n_new):
    "The decode steps' matrix products alone: every `nn.Linear` of the model on B rows, n_new times (no tokens)"
    lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    xs = {l.in_features: torch.randn(B, 1, l.in_features, dtype=l.weight.dtype) for l in lins}
    for _ in range(n_new):
        for l in lins: l(xs[l.in_features])

def prompts(B, n, vocab_size):
    "One prompt of `n` random ids, or `B` left-padded prompts of n/2 to n ids: (ids, attention mask)"
    g = torch.Generator().manual_seed(B)
    lens = [n] if B == 1 else torch.randint(n // 2, n + 1, (B,), generator=g).tolist()
    ids, mask, _ = pad_left([torch.randint(0, vocab_size, (k,), generator=g).tolist() for k in lens])
    return ids, mask

def median_seconds(fns, rounds, skip=()):
    "Median wall seconds of each function over alternating rounds after a warm-up round; `skip`: only the warm-up, timed"
    times, outs = {k: [] for k in fns}, {}
    for r in range(rounds + 1):
        for k, f in fns.items():
            if k in skip and r > 0: continue
            t = time.perf_counter(); outs[k] = f(); dt = time.perf_counter() - t
            if r > 0 or k in skip: times[k].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}, outs

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--prompt', type=int, default=32, help='prompt tokens (the longest prompt when batched)')
    p.add_argument('--new', type=int, default=200, help='generated tokens per row')
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8], help='batch sizes')
    p.add_argument('--rounds', type=int, default=3, help='alternating timed rounds (the no-cache run is timed once)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (1: decode steps are too small to split)')
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS), help='which models')
    p.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'], help='weights and activations, both sides')
    p.add_argument('--no-autotune', action='store_true', help='compile without max-autotune (faster compile, slower steps)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    dtype = getattr(torch, a.dtype)
    print(f"prompt {a.prompt} (batched: {a.prompt // 2}-{a.prompt}, left-padded) + {a.new} new tokens, greedy, {a.dtype}, {a.threads} thread(s), median of {a.rounds} rounds, "
          f"torch {torch.__version__}\n")
    print('| model | batch | implementation | tokens/s | ms/step | vs transformers | same tokens as transformers |')
    print('|---|---|---|---|---|---|---|')
    compile_s = []
    for name in a.models:
        cfg = MODELS[name]
        torch.manual_seed(0)
        model = GPT(cfg).eval().to(dtype)
        hf = model.to_hf()
        decoder = CompiledDecode(model, max_len=a.prompt + a.new, max_autotune=not a.no_autotune)
        for B in a.batches:
            ids, mask = prompts(B, a.prompt, cfg.vocab_size)
            fns = contenders(model, hf, decoder, ids, mask, a.new)
            t = time.perf_counter(); generate(model, ids, 2, attn_mask=None if mask.all() else mask, decoder=decoder)   # compiles for this batch size
            compile_s.append(f"{name} batch {B}: {time.perf_counter() - t:.1f} s")
            secs, outs = median_seconds(fns, a.rounds, skip={'ours, no cache'})
            ref = secs['transformers, KV cache']
            for k, s in secs.items():
                same = '—' if outs[k] is None else torch.equal(outs[k], outs['transformers, KV cache'])
                print(f"| {name} | {B} | {k} | {B * a.new / s:,.0f} | {s / a.new * 1e3:.2f} | {ref / s:.2f}× | {same} |", flush=True)
    print(f"\ncompile time of `ours, compiled` (first call: tracing, {'' if a.no_autotune else 'autotuning, '}C++ build): " + '; '.join(compile_s))

if __name__ == '__main__': main()
