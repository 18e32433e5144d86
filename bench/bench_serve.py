"""Serving throughput and time to first token: `llm_nb_serve` (continuous batching) at 1, 4, 16 and 64 concurrent
streaming clients (plain HTTP clients reading the server-sent events, as vLLM's benchmark_serving does), against the same requests served one at a time by `transformers`'
`generate` on the same weights (on one thread and on all cores, whichever is faster).

Each client sends its next request as soon as the previous one has finished (a closed loop); the requests are the
same list in both cases: prompts of 8 to 40 tokens cut from the validation text, greedy, at most --max-tokens new
tokens (the end-of-text token stops a reply earlier). Throughput is generated tokens over wall time. For
transformers served one at a time, a client's wait behind the others is simulated from the measured durations.

    python bench/bench_serve.py runs/base [--clients 1 4 16 64] [--max-tokens 64] [--threads 1] [--compile]
"""
import argparse, asyncio, json, os, random, signal, statistics, subprocess, sys, time
import torch
from llm_nb.runs import load_gpt, read_run
from llm_nb.train import prepare_data

def prompts_from_val(tok, tokens, n:int, seed:int=0) -> list[list[int]]:
    "n prompts of 8..40 tokens starting at random validation positions"
    rng = random.Random(seed)
    return [tokens[s:s + rng.randint(8, 40)].tolist() for s in (rng.randrange(len(tokens) - 64) for _ in range(n))]

def start_server(run, port, slots, threads, compile=False):
    cmd = ['llm_nb_serve', run, '--port', str(port), '--slots', str(slots), '--queue', '1024', '--timeout', '3600']
    if threads: cmd += ['--threads', str(threads)]
    if compile: cmd += ['--compile']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx2 as httpx
    for _ in range(3000):                      # --compile compiles before serving: up to a few minutes
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200: return proc
        except Exception: time.sleep(0.1)
        if proc.poll() is not None: raise RuntimeError(proc.stderr.read())
    raise RuntimeError("the server did not start")

async def run_clients(url, model, prompts, clients, max_tokens):
    "Closed-loop streaming clients; per request (tokens, time to first token); and the wall time"
    import httpx2 as httpx       # a plain HTTP client, as vLLM's benchmark_serving uses: the openai client's own parsing would
    todo, results = list(enumerate(prompts)), {}   # cost as much CPU as the server on this 2-core machine
    async with httpx.AsyncClient(timeout=3600, limits=httpx.Limits(max_connections=clients + 4)) as client:
        async def one_client():
            while todo:
                i, p = todo.pop(0)
                t0, first, n = time.perf_counter(), None, 0
                body = dict(model=model, prompt=p, max_tokens=max_tokens, temperature=0, stream=True, stream_options=dict(include_usage=True))
                async with client.stream('POST', url + '/completions', json=body) as r:
                    async for line in r.aiter_lines():
                        if not line.startswith('data: {'): continue
                        chunk = json.loads(line[6:])
                        if chunk['choices'] and chunk['choices'][0]['text'] and first is None: first = time.perf_counter() - t0
                        if chunk.get('usage'): n = chunk['usage']['completion_tokens']
                results[i] = (n, first if first is not None else time.perf_counter() - t0)
        t = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - t
    return [results[i] for i in range(len(prompts))], wall

def hf_one_at_a_time(model, prompts, max_tokens, eot):
    "transformers' generate, one request at a time: per request (tokens, seconds to first token, seconds in all)"
    hf = model.to_hf(eos_token_id=eot, pad_token_id=eot)
    out = []
    with torch.no_grad():
        hf.generate(torch.tensor([prompts[0]]), max_new_tokens=4, do_sample=False)    # warm up
        for p in prompts:
            ids = torch.tensor([p])
            t = time.perf_counter(); hf.generate(ids, max_new_tokens=1, do_sample=False); first = time.perf_counter() - t
            t = time.perf_counter(); res = hf.generate(ids, max_new_tokens=max_tokens, do_sample=False); total = time.perf_counter() - t
            out.append((res.size(1) - len(p), first, total))
    return out

def simulate_queue(per_request, clients):
    "Closed-loop clients in front of one worker serving FIFO: each request's time to first token; the wall time"
    free_at, ttft, clock = 0.0, [], [0.0] * clients     # the worker, and when each client sends its next request
    for k, (n, first, total) in enumerate(per_request):
        c = min(range(clients), key=lambda j: clock[j])
        start = max(free_at, clock[c])
        ttft.append(start - clock[c] + first)
        free_at = clock[c] = start + total
    return ttft, free_at

def pct(xs, q): xs = sorted(xs); return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run'); ap.add_argument('--clients', type=int, nargs='+', default=[1, 4, 16, 64])
    ap.add_argument('--max-tokens', type=int, default=64); ap.add_argument('--requests', type=int, default=None)
    ap.add_argument('--port', type=int, default=8765); ap.add_argument('--threads', type=int, default=None, help="the server's torch threads (default: llm_nb_serve's)")
    ap.add_argument('--compile', action='store_true', help='serve with llm_nb_serve --compile')
    a = ap.parse_args()
    model, tok = load_gpt(a.run)
    args = read_run(a.run)['args']
    data = prepare_data(args['corpus'], args['cfg']['model']['vocab_size'], args['cfg']['val_frac'], args['cfg']['seed'])
    n_req = a.requests or max(2 * max(a.clients), 32)
    prompts = prompts_from_val(tok, data.val, n_req)
    baselines = {}                         # the peer at its best: transformers on one thread and on all cores, the faster kept
    for t in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(t); baselines[t] = hf_one_at_a_time(model, prompts, a.max_tokens, tok.eot_id)
    hf_threads = max(baselines, key=lambda t: sum(r[0] for r in baselines[t]) / sum(r[2] for r in baselines[t]))
    hf = baselines[hf_threads]
    hf_tokens, hf_time = sum(r[0] for r in hf), sum(r[2] for r in hf)
    proc = start_server(a.run, a.port, max(a.clients), a.threads, a.compile)
    rows = []
    try:
        name = os.path.basename(os.path.abspath(a.run))
        asyncio.run(run_clients(f"http://127.0.0.1:{a.port}/v1", name, prompts[:4], 2, a.max_tokens))   # warm up
        for c in a.clients:
            res, wall = asyncio.run(run_clients(f"http://127.0.0.1:{a.port}/v1", name, prompts, c, a.max_tokens))
            tokens = sum(r[0] for r in res)
            ttft = [r[1] for r in res]
            hf_ttft, hf_wall = simulate_queue(hf, c)
            rows.append((c, tokens / wall, pct(ttft, .5), pct(ttft, .95), hf_tokens / hf_wall, pct(hf_ttft, .5), pct(hf_ttft, .95), tokens == hf_tokens))
    finally:
        proc.send_signal(signal.SIGINT); proc.wait(timeout=30)
    print(f"model: {a.run} ({model.num_params() / 1e6:.2f}M parameters); {n_req} requests of 8-40 prompt tokens, "
          f"greedy, max_tokens={a.max_tokens}; server with {max(a.clients)} slots{' and --compile' if a.compile else ''}, torch threads "
          f"{a.threads or f'{max(1, (os.cpu_count() or 1) - 1)} (its default: all cores but one)'}; transformers: the faster of 1 and {os.cpu_count()} threads, {hf_threads} "
          f"({', '.join(f'{t}: {sum(r[0] for r in b) / sum(r[2] for r in b):,.0f} tok/s' for t, b in baselines.items())})\n")
    print("| clients | llm_nb_serve tok/s | TTFT p50 | TTFT p95 | transformers one at a time tok/s | TTFT p50 | TTFT p95 | throughput × transformers | same token count |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, tps, p50, p95, htps, h50, h95, same in rows:
        print(f"| {c} | {tps:,.0f} | {p50 * 1e3:.0f} ms | {p95 * 1e3:.0f} ms | {htps:,.0f} | {h50 * 1e3:.0f} ms | {h95 * 1e3:.0f} ms | {tps / htps:.1f}× | {'yes' if same else 'no'} |")

if __name__ == '__main__': main()
