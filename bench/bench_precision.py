"""Which precision this machine multiplies fast: matrix-product throughput in fp32, bf16 and fp16, and what `dtype="auto"` picks.

Recipes default to `dtype="auto"` (chapter 91's `resolve_dtype`): bf16 autocast where the device has bf16 matrix
kernels (`native_bf16`: a CUDA GPU with bf16, a CPU whose oneDNN has a bf16 path — AVX-512 or Arm BF16), fp32 on
other CPUs. This prints the evidence for that rule on the machine it runs on: the best GFLOP/s of products of the
shapes a training step of the `cpu` preset does (tokens × width @ width × 4·width, the output layer, Muon's Gram
matrix) and of a square one, each precision against fp32 in the same run.

    python bench/bench_precision.py
    python bench/bench_precision.py --threads 2 --seconds 1
"""
import argparse, math, platform, time
import torch
from llm_nb.runs import native_bf16, resolve_dtype
from llm_nb.train import PRECISIONS

SHAPES = [((4096, 256), (256, 1024)),    # B·T tokens × C @ C × 4C: the MLP's up-projection
          ((896, 256), (256, 2048)),     # a chunk of the fused loss: rows × C @ C × V
          ((256, 1024), (1024, 256)),    # Newton–Schulz's Gram matrix X Xᵀ of a 256 × 1024 matrix
          ((1024, 1024), (1024, 1024))]  # square

def gflops(a_shape, b_shape, dtype, seconds):
    "Best GFLOP/s of `a @ b` in `dtype` over about `seconds` of repeats (at least two)"
    a, b = torch.randn(a_shape, dtype=dtype), torch.randn(b_shape, dtype=dtype)
    t = time.perf_counter(); a @ b; first = time.perf_counter() - t           # warm-up, and the size of one product
    best, reps = math.inf, max(2, min(50, int(seconds / max(first, 1e-6))))
    for _ in range(reps):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    return 2 * a_shape[0] * a_shape[1] * b_shape[1] / best / 1e9

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seconds", type=float, default=0.5, help="time spent on each cell, about")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}; native_bf16('cpu') = {native_bf16('cpu')}; "
          f"dtype='auto' trains in {resolve_dtype('auto', 'cpu')}\n")
    print("| product | " + " | ".join(f"{n} GFLOP/s" for n in PRECISIONS) + " | bf16 / fp32 | fp16 / fp32 |")
    print("|---|" + "---:|" * (len(PRECISIONS) + 2))
    for sa, sb in SHAPES:
        g = {n: gflops(sa, sb, d, a.seconds) for n, d in PRECISIONS.items()}
        print(f"| {sa[0]}×{sa[1]} @ {sb[0]}×{sb[1]} | " + " | ".join(f"{v:,.1f}" for v in g.values())
              + f" | {g['bf16'] / g['fp32']:.3f}× | {g['fp16'] / g['fp32']:.3f}× |", flush=True)

if __name__ == "__main__": main()
