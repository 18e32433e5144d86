"""Causal attention, forward + backward: PyTorch's fused kernel against llm_nb's explicit `baddbmm` path.

The numbers behind `llm_nb.attention.EXPLICIT_ATTENTION_MAX_T` and `prefers_explicit_attention`: on a CPU in
bf16 the explicit path wins for short blocks and loses for long ones. Every row keeps 4,096 tokens per batch
(B = 4096 / T), 4 heads of 64, as in the `cpu` training preset. Runs alternate between the two contenders and
the table reports medians, so a busy machine slows both alike.

    python bench/bench_attention.py
    python bench/bench_attention.py --lengths 256 1024 --reps 20
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from llm_nb.attention import explicit_causal_attention, EXPLICIT_ATTENTION_MAX_T

def fused(q, k, v): return F.scaled_dot_product_attention(q, k, v, is_causal=True)

def step_seconds(f, q, k, v, grad):
    "Wall seconds of one forward + backward"
    t = time.perf_counter()
    f(q, k, v).backward(grad)
    return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024], help="sequence lengths T")
    p.add_argument("--tokens", type=int, default=4096, help="tokens per batch (B = tokens / T)")
    p.add_argument("--heads", type=int, default=4); p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--reps", type=int, default=10, help="timed forward+backward passes of each contender")
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.tokens} tokens per batch, "
          f"{a.heads} heads x {a.head_dim}; EXPLICIT_ATTENTION_MAX_T = {EXPLICIT_ATTENTION_MAX_T}\n")
    print("| dtype | T | fused kernel ms | explicit ms | explicit vs fused |\n|---|---:|---:|---:|---:|")
    for dtype in (torch.float32, torch.bfloat16):
        for T in a.lengths:
            g = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(a.tokens // T, a.heads, T, a.head_dim, generator=g).to(dtype).requires_grad_() for _ in range(3))
            grad = torch.randn(q.shape, generator=g).to(dtype)
            times = {fused: [], explicit_causal_attention: []}
            for f in times: step_seconds(f, q, k, v, grad)          # warm up
            for _ in range(a.reps):
                for f in times: times[f].append(step_seconds(f, q, k, v, grad))
            ms = {f: statistics.median(ts) * 1e3 for f, ts in times.items()}
            print(f"| {str(dtype).removeprefix('torch.')} | {T} | {ms[fused]:.1f} | {ms[explicit_causal_attention]:.1f} "
                  f"| {ms[fused] / ms[explicit_causal_attention]:.2f}x |")

if __name__ == "__main__": main()
