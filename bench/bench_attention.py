"""Causal attention, forward + backward: PyTorch's fused kernel against llm_nb's explicit `baddbmm` path.

The numbers behind `llm_nb.attention.EXPLICIT_ATTENTION_MAX_T` and `prefers_explicit_attention`: on a CPU in
bf16 the explicit path wins for short blocks and loses for long ones. Every row keeps 4,096 tokens per batch
(B = 4096 / T), 4 heads of 64, as in the `cpu` training preset. "padded" rows add a padding mask, as batches of
prompts of different lengths carry (each row left-padded by a random quarter of T at most; chapter 06), given to both
contenders. Runs alternate between the two contenders and the table reports medians, so a busy machine slows both alike.

    python bench/bench_attention.py
    python bench/bench_attention.py --lengths 256 1024 --reps 20

On a CPU without bf16 kernels (`native_bf16`: no AVX-512) only the fp32 rows run.
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from llm_nb.attention import explicit_causal_attention, causal_mask, EXPLICIT_ATTENTION_MAX_T
from llm_nb.runs import native_bf16

def fused(q, k, v, mask=None): return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)

def padding_mask(B, T, g):
    "Causal mask (B, 1, T, T) of left-padded rows (up to T // 4 pads each); a token always sees itself"
    pads = torch.randint(T // 4 + 1, (B, 1), generator=g)
    real = torch.arange(T)[None] >= pads                                         # (B, T)
    return causal_mask(T)[None, None] & (real[:, None, None, :] | torch.eye(T, dtype=torch.bool))

def step_seconds(f, q, k, v, mask, grad):
    "Wall seconds of one forward + backward"
    t = time.perf_counter()
    f(q, k, v, mask).backward(grad)
    return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024], help="sequence lengths T")
    p.add_argument("--tokens", type=int, default=4096, help="tokens per batch (B = tokens / T)")
    p.add_argument("--heads", type=int, default=4); p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--reps", type=int, default=10, help="timed forward+backward passes of each contender")
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.tokens} tokens per batch, "
          f"{a.heads} heads x {a.head_dim}; EXPLICIT_ATTENTION_MAX_T = {EXPLICIT_ATTENTION_MAX_T}\n")
    rows = ((torch.float32, False), (torch.bfloat16, False), (torch.bfloat16, True))
    if not native_bf16("cpu"):                # emulated bf16 would take hours and is never trained in here (dtype auto = fp32)
        rows = rows[:1]; print("this CPU has no bf16 kernels (no AVX-512): fp32 rows only\n")
    print("| dtype | mask | T | fused kernel ms | explicit ms | explicit vs fused |\n|---|---|---:|---:|---:|---:|")
    for dtype, padded in rows:
        for T in a.lengths:
            g = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(a.tokens // T, a.heads, T, a.head_dim, generator=g).to(dtype).requires_grad_() for _ in range(3))
            grad = torch.randn(q.shape, generator=g).to(dtype)
            mask = padding_mask(a.tokens // T, T, g) if padded else None
            times = {fused: [], explicit_causal_attention: []}
            for f in times: step_seconds(f, q, k, v, mask, grad)          # warm up
            for _ in range(a.reps):
                for f in times: times[f].append(step_seconds(f, q, k, v, mask, grad))
            ms = {f: statistics.median(ts) * 1e3 for f, ts in times.items()}
            print(f"| {str(dtype).removeprefix('torch.')} | {'padded' if padded else 'causal'} | {T} | {ms[fused]:.1f} "
                  f"| {ms[explicit_causal_attention]:.1f} | {ms[fused] / ms[explicit_causal_attention]:.2f}x |")

if __name__ == "__main__": main()
