"""Training throughput: llm_nb's `Trainer` + `GPT` against transformers' `GPT2LMHeadModel`, same run.

Same model shape, batch, fused AdamW (decay groups), gradient clipping and autocast dtype for both; the
peer is trained by the usual loop (`model(input_ids, labels=...)`, backward, step). Runs alternate between
the two (A B A B ...) and the table reports the median seconds per step, so a busy machine slows both alike.
Model FLOPs utilisation (MFU) = 6N + 12·L·d·T FLOPs per token × tokens/s ÷ the measured matmul peak.
The last row times only the matmuls of a step (no softmax, GELU, norms, loss or optimizer): no implementation
of this model, ours or HF's, can be faster than it on this machine (with `--recipe`, a second ceiling adds the
Newton–Schulz products of Muon's step, which the recipe's optimizer must also do). `--recipe` adds the main job's path: the
same shape with the `cpu` preset's model options and optimizer (chapter 07a: rotary positions, an untied head,
Muon for the blocks' matrices), ours against transformers' `GPTNeoXForCausalLM` of the same architecture (chapter
05's export) trained with the same Muon + AdamW groups; its ratio is to that peer.

    python bench/bench_train.py                      # 4 layers, d=256, vocab 4096, T=256, B=16
    python bench/bench_train.py --steps 8 --rounds 3 --compile --recipe
    python bench/bench_train.py --n-layer 2 --vocab 2048 --recipe     # the cpu preset's own shape
    python bench/bench_train.py --dtypes fp32                         # one precision (the default skips bf16 on a CPU without bf16 kernels)
"""
import argparse, math, statistics, time
from dataclasses import replace
import torch
from llm_nb.model import GPT, GPTConfig, hf_config, hf_architecture, neox_name
from llm_nb.train import Trainer, Callback, make_optimizer, CompileCB, PRECISIONS, autocast_for, TRAIN_PRESETS
from llm_nb.speedrun import muon_adamw, newton_schulz, hidden_matrices
from llm_nb.runs import native_bf16

def matmul_peak(dtype, n=2048, reps=10):
    "Best FLOP/s of an n×n @ n×n matmul in `dtype`"
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best

class StepTimes(Callback):
    "Seconds of each optimizer step"
    order = 1000
    def before_fit(self, learn): self.times, self.t = [], time.perf_counter()
    def after_step(self, learn):
        now = time.perf_counter(); self.times.append(now - self.t); self.t = now

def with_recipe(cfg, recipe):
    "`cfg`'s shape with the model options of `recipe` (a TrainConfig)"
    options = ('pos', 'norm', 'mlp', 'bias', 'tie_weights', 'qk_norm', 'value_embed', 'softcap', 'zero_init')
    return replace(cfg, **{k: getattr(recipe.model, k) for k in options})

class OurNames:
    "A transformers GPT-NeoX seen under our parameter names, so that `muon_adamw` groups it as it groups our GPT"
    def __init__(self, model): self.model = model
    def named_parameters(self): return ((neox_name(n, inverse=True), p) for n, p in self.model.named_parameters())

def ours(cfg, batch, steps, dtype, compile=False, recipe=None):
    "Seconds per step of our Trainer; with `recipe` (a TrainConfig), its model options and optimizer at `cfg`'s shape"
    torch.manual_seed(0)
    timer = StepTimes()
    cbs = [timer] + ([CompileCB()] if compile else [])
    opt_fn = None
    if recipe is not None:
        cfg = with_recipe(cfg, recipe)
        if recipe.optimizer == 'muon': opt_fn = lambda m: muon_adamw(m, 1e-3, recipe.muon_lr, recipe.embed_lr)
    Trainer(GPT(cfg), lambda step: [batch], cbs=cbs, max_steps=steps, lr=1e-3, dtype=dtype, opt_fn=opt_fn).fit()
    return timer.times

def matmuls_only(cfg, batch, steps, dtype, muon=False):
    "Seconds per step of only the matmuls a training step does (forward and both backward GEMMs of every Linear, attention's"
    " batched matmuls, the tied output layer), on preallocated tensors: the ceiling for any implementation of this model;"
    " with `muon`, also Muon's orthogonalisation of every hidden matrix (the optimizer's unavoidable products)"
    x, _ = batch
    B, T = x.shape
    n, C, nh, dt = B * T, cfg.n_embd, cfg.n_head, PRECISIONS[dtype]
    linears = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * cfg.n_layer + [(C, cfg.vocab_size)]   # (in, out)
    shapes = [((n, i), (i, o)) for i, o in linears]                    # forward: activations @ weight
    shapes += [((n, o), (o, i)) for i, o in linears] + [((i, n), (n, o)) for i, o in linears]   # backward: dX, dW
    bmm = [((B * nh, T, C // nh), (B * nh, C // nh, T)), ((B * nh, T, T), (B * nh, T, C // nh))] * cfg.n_layer
    shapes += bmm * 3                                                  # forward, and two GEMMs each in backward
    operands = [(torch.randn(a, dtype=dt), torch.randn(b, dtype=dt)) for a, b in shapes]
    model = GPT(cfg)
    momenta = [torch.randn_like(model.get_parameter(n)) for n in hidden_matrices(model)] if muon else []
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        for a, b in operands: torch.matmul(a, b)
        for m in momenta: newton_schulz(m)
        times.append(time.perf_counter() - t)
    return times

def hf(cfg, batch, steps, dtype, recipe=None):
    "Seconds per step of transformers' GPT-2 (with `recipe`: its GPT-NeoX of the recipe's model and the recipe's optimizer)"
    torch.manual_seed(0)
    if recipe is not None: cfg = with_recipe(cfg, recipe)
    model = hf_architecture(cfg)(hf_config(cfg)).train()
    muon = recipe is not None and recipe.optimizer == 'muon'
    opt = muon_adamw(OurNames(model), 1e-3, recipe.muon_lr, recipe.embed_lr) if muon else make_optimizer(model, 1e-3)
    x, _ = batch
    times, t = [], time.perf_counter()
    for _ in range(steps):
        with autocast_for(torch.device("cpu"), dtype):
            loss = model(input_ids=x, labels=x).loss   # HF shifts the labels itself
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        now = time.perf_counter(); times.append(now - t); t = now
    return times

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-layer", type=int, default=4); p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--vocab", type=int, default=4096); p.add_argument("--block", type=int, default=256)
    p.add_argument("--batch", type=int, default=16); p.add_argument("--steps", type=int, default=6, help="steps per run (the first is dropped)")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each contender")
    p.add_argument("--compile", action="store_true", help="also time our trainer with torch.compile")
    p.add_argument("--recipe", action="store_true", help="also time our trainer with the cpu preset's (chapter 07a's) model options and optimizer")
    p.add_argument("--dtypes", default="fp32,bf16" if native_bf16("cpu") else "fp32",
                   help="precisions, comma-separated (default: fp32, and bf16 where the CPU has bf16 kernels)")
    a = p.parse_args()
    dtypes = a.dtypes.split(",")
    if not set(dtypes) <= {"fp32", "bf16"}: p.error(f"--dtypes: fp32 and/or bf16, got {a.dtypes!r}")
    cfg = GPTConfig(vocab_size=a.vocab, block_size=a.block, n_layer=a.n_layer, n_head=max(1, a.n_embd // 64), n_embd=a.n_embd)
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(0, a.vocab, (a.batch, a.block + 1), generator=g)
    batch = (xy[:, :-1], xy[:, 1:])
    flops_tok = GPT(cfg).flops_per_token()
    peaks = {d: matmul_peak(PRECISIONS[d]) for d in dtypes}
    print(f"model: {a.n_layer} layers x {a.n_embd}, vocab {a.vocab}, T={a.block}, B={a.batch}; "
          f"{flops_tok / 1e6:.1f} MFLOP/token; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("matmul peak: " + ", ".join(f"{d} {peaks[d] / 1e9:.0f} GFLOP/s" for d in dtypes) + f" (CPU capability {torch.backends.cpu.get_cpu_capability()})\n")
    contenders = {"llm_nb Trainer": lambda d: ours(cfg, batch, a.steps, d), "HF GPT2LMHeadModel": lambda d: hf(cfg, batch, a.steps, d)}
    if a.compile: contenders["llm_nb Trainer + compile"] = lambda d: ours(cfg, batch, a.steps + 2, d, compile=True)[2:]
    if a.recipe:
        contenders["llm_nb Trainer, cpu recipe"] = lambda d: ours(cfg, batch, a.steps, d, recipe=TRAIN_PRESETS["cpu"])
        if a.compile: contenders["llm_nb Trainer + compile, cpu recipe"] = lambda d: ours(cfg, batch, a.steps + 2, d, compile=True, recipe=TRAIN_PRESETS["cpu"])[2:]
        contenders["HF GPTNeoXForCausalLM, cpu recipe"] = lambda d: hf(cfg, batch, a.steps, d, recipe=TRAIN_PRESETS["cpu"])
    contenders["only the matmuls (ceiling)"] = lambda d: matmuls_only(cfg, batch, a.steps, d)
    if a.recipe: contenders["only the matmuls and Newton–Schulz (ceiling), cpu recipe"] = lambda d: matmuls_only(cfg, batch, a.steps, d, muon=True)
    rows = []
    for dtype in dtypes:
        times = {name: [] for name in contenders}
        for _ in range(a.rounds):
            for name, run in contenders.items(): times[name] += run(dtype)[1:]
        for name in contenders:
            tok_s = a.batch * a.block / statistics.median(times[name])
            rows.append((dtype, name, tok_s, tok_s * flops_tok / peaks[dtype]))
    peer = {(d, n.endswith("recipe")): s for d, n, s, _ in rows if n.startswith("HF")}   # each row against HF's model of its recipe
    print(f"| dtype | trainer | tokens/s | vs HF | MFU |\n|---|---|---:|---:|---:|")
    for d, n, s, mfu in rows: print(f"| {d} | {n} | {s:,.0f} | {s / peer[d, n.endswith('recipe')]:.2f}x | {mfu:.1%} |")

if __name__ == "__main__": main()
