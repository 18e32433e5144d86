"""The continuous-batching engine alone (no HTTP): generated tokens per second at 1, 4, 16 and 64 requests in flight,
with eager decode steps and with chapter 06's compiled decode step (`CompiledDecode`, one compiled batch size per
power of two), on a trained run.

The same 128 requests as bench_serve.py (prompts of 8-40 validation tokens, greedy, at most 64 new tokens, end-of-text
stops a reply), kept `clients` at a time in flight (a closed loop), stepping the engine on this thread.

    python bench/bench_engine.py runs/base [--threads 1] [--compiled]
"""
import argparse, random, time
import torch
from llm_nb.runs import load_gpt, read_run
from llm_nb.train import prepare_data
from llm_nb.engine import Engine, SamplingParams
from llm_nb.generate import CompiledDecode

def closed_loop(model, prompts, clients, stop, decoder=None, max_tokens=64, compiled_rows=64):
    "Tokens per second and ms per engine step with `clients` requests kept in flight"
    engine = Engine(model, max_slots=64, max_queue=len(prompts), decoder=decoder, compiled_rows=compiled_rows)
    todo, inflight, tokens = list(prompts), [], 0
    t = time.perf_counter()
    while todo or inflight:
        while todo and len(inflight) < clients:
            inflight.append(engine.submit(todo.pop(0), SamplingParams(max_tokens=max_tokens, temperature=0, stop=(stop,))))
        engine.step()
        for r in [r for r in inflight if r.finish]: tokens += len(r.tokens); inflight.remove(r)
    dt = time.perf_counter() - t
    return tokens / dt, dt / engine.steps * 1e3, tokens

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run'); ap.add_argument('--threads', type=int, default=1); ap.add_argument('--compiled', action='store_true')
    ap.add_argument('--clients', type=int, nargs='+', default=[1, 4, 16, 64])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, tok = load_gpt(a.run)
    args = read_run(a.run)['args']
    data = prepare_data(args['corpus'], args['cfg']['model']['vocab_size'], args['cfg']['val_frac'], args['cfg']['seed'])
    rng = random.Random(0)
    prompts = [data.val[s:s + rng.randint(8, 40)].tolist() for s in (rng.randrange(len(data.val) - 64) for _ in range(128))]
    decoder, compile_s = None, 0.0
    if a.compiled:
        decoder, t = CompiledDecode(model, max_len=model.config.block_size), time.perf_counter()
        for b in (1, 2, 4, 8, 16, 32, 64): closed_loop(model, prompts[:b], b, tok.eot_id, decoder, max_tokens=2)   # compile each size
        compile_s = time.perf_counter() - t
    print(f"model: {a.run}; 128 requests, greedy, max 64 new tokens; torch threads {a.threads}"
          + (f"; compiling 7 batch sizes took {compile_s:.0f} s" if a.compiled else "") + "\n")
    cols = ["eager"] + (["compiled", "compiled up to 8 rows, eager beyond (the engine's choice)"] if a.compiled else [])
    print("| requests in flight | " + " | ".join(f"{c} tok/s" for c in cols) + " | ms per step, eager |")
    print("|---|" + "---|" * (len(cols) + 1))
    for c in a.clients:
        tps, ms, _ = closed_loop(model, prompts, c, tok.eot_id)
        row = [f"{tps:,.0f}"]
        if a.compiled: row += [f"{closed_loop(model, prompts, c, tok.eot_id, decoder, compiled_rows=r)[0]:,.0f}" for r in (64, 8)]
        print(f"| {c} | " + " | ".join(row) + f" | {ms:.2f} |")

if __name__ == '__main__': main()
