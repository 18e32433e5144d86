"""Distributed training on this CPU: equality with one process, memory per process against the planner,
the pipeline bubble, activation checkpointing, and PyTorch's fake-tensor estimate against the planner.

Every section launches real processes with `torchrun --standalone` (gloo backend) through `llm_nb.distributed`'s
worker functions and prints a Markdown table; chapters 08 and 08a show these tables. Run each section under the
machine's lock (its timings are only meaningful on a quiet machine):

    flock /work/cpu.lock python bench/bench_distributed.py equality   # 2-process strategies vs one process
    flock /work/cpu.lock python bench/bench_distributed.py equality4  # 4-process (2-D) strategies vs one process
    flock /work/cpu.lock python bench/bench_distributed.py memory     # MemTracker peaks at 1, 2 and 4 processes vs llm_nb.plan
    flock /work/cpu.lock python bench/bench_distributed.py bubble     # pipeline bubble vs (p - 1) / m
    flock /work/cpu.lock python bench/bench_distributed.py ac         # activation checkpointing: peak and time
    flock /work/cpu.lock python bench/bench_distributed.py fake       # fake-tensor estimate (GPT-2 small, XL) vs llm_nb.plan
"""
import argparse, json, tempfile, time
from pathlib import Path
import torch
from llm_nb.distributed import torchrun, memory_check, apply_ac, byte_tokens, step_memory
from llm_nb.model import GPT, GPTConfig, PRESETS
from llm_nb.plan import plan, fake_memory_subprocess
from llm_nb.train import Trainer, RandomWindows
from llm_nb.runs import read_json

MiB = 2**20

def run(code, nproc):
    tmp = Path(tempfile.mkdtemp())/"rows.json"
    torchrun(code.replace("{out!r}", repr(str(tmp))), nproc=nproc, timeout=900)   # (not str.format: the code holds dict literals)
    return read_json(tmp)

EQUALITY = {2: ["dp=2", "dp=2,zero1=True", "fsdp=2", "fsdp=2,reshard=False", "fsdp=2,offload=True", "tp=2",
                "pp=2,schedule=gpipe", "pp=2,schedule=1f1b", "pp=2,schedule=interleaved"],
            4: ["fsdp=2,tp=2", "dp=2,fsdp=2", "dp=2,tp=2", "pp=2,fsdp=2", "pp=2,tp=2", "pp=2,fsdp=2,schedule=interleaved", "pp=4,schedule=gpipe"]}

def equality(nproc:int=2):
    rows = run(f"from llm_nb.distributed import check_parallel; check_parallel({EQUALITY[nproc]!r}, out={{out!r}})", nproc)
    print(f"| strategy ({nproc} processes) | max \\|Δ grad\\| | max \\|Δ loss\\| | ms/step (one process) |\n|---|---:|---:|---:|")
    for r in rows: print(f"| `{r['spec']}` | {r['grads']:.1e} | {r['loss']:.1e} | {r['ms_per_step']:.0f} ({r['ms_one_process']:.0f}) |")

def memory():
    shape = dict(n_layer=4, n_embd=256, seq_len=256, micro_batch=8)
    cfg = GPTConfig(vocab_size=256, block_size=256, n_layer=4, n_head=4, n_embd=256)
    rows = memory_check(["dp=1"], **shape)
    for n in (2, 4):
        specs = [f"dp={n}", f"dp={n},zero1=True", f"fsdp={n}", f"fsdp={n},reshard=False"] + (["tp=2"] if n == 2 else ["fsdp=2,tp=2"])
        rows += run(f"from llm_nb.distributed import memory_check; memory_check({specs!r}, out={{out!r}}, **{shape!r})", n)
    print("| processes | strategy | parameters | optimizer | activations + other | measured peak (MiB) | planned (MiB) | planned / measured |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p = plan(cfg, r["world"], r["spec"], micro_batch=8, seq_len=256)
        other = r["total"] - r.get("parameter", 0) - r.get("optstate", 0)
        print(f"| {r['world']} | `{r['spec']}` | {r.get('parameter', 0) / MiB:.1f} | {r.get('optstate', 0) / MiB:.1f} | {other / MiB:.1f} | "
              f"{r['total'] / MiB:.1f} | {p.total_bytes / MiB:.1f} | {p.total_bytes / r['total']:.3f} |")

def bubble():
    print("| schedule | p | m | step (ms) | stage compute alone (ms) | measured bubble | (p - 1)/m |\n|---|---:|---:|---:|---:|---:|---:|")
    for schedule in ("gpipe", "1f1b"):
        for r in run(f"from llm_nb.distributed import measure_bubble; measure_bubble({schedule!r}, out={{out!r}})", 2):
            print(f"| {r['schedule']} | {r['p']} | {r['m']} | {r['step_ms']:.0f} | {r['busy_ms']:.0f} | {r['bubble']:.2f} | {r['theory']:.2f} |")

def ac():
    torch.set_num_threads(2)
    cfg = GPTConfig(vocab_size=256, block_size=256, n_layer=8, n_head=8, n_embd=512)
    tokens, ref = byte_tokens(), None
    print("| checkpointing (8 layers × 512, 8 × 256 tokens, fp32) | peak (MiB) | s/step | time vs none |\n|---|---:|---:|---:|")
    for mode, every in [("none", 1), ("full", 1), ("full", 2), ("selective", 1)]:
        torch.manual_seed(0)
        model = GPT(cfg)
        if mode != "none": apply_ac(model, mode, every)
        learn = Trainer(model, RandomWindows(tokens, 256, 8), max_steps=20)
        learn.one_step()
        peak = step_memory(learn)["total"]
        t0 = time.perf_counter()
        for _ in range(5): learn.one_step()
        s = (time.perf_counter() - t0) / 5
        ref = ref or s
        print(f"| {mode if every == 1 else f'{mode}, every {every}'} | {peak / MiB:.0f} | {s:.2f} | {s / ref:.2f} |")

def fake():
    print("| model | processes | strategy | fake-tensor peak (GiB) | planned (GiB) | planned / fake | seconds |\n|---|---:|---|---:|---:|---:|---:|")
    for name, world, spec, b in [("gpt2", 8, "fsdp=8", 1), ("gpt2", 8, "fsdp=8", 4), ("gpt2-xl", 8, "fsdp=8", 1), ("gpt2-xl", 8, "fsdp=8,ac=full", 4)]:
        cfg = PRESETS[name]
        t0 = time.perf_counter()
        fake = fake_memory_subprocess(cfg, world, spec, micro_batch=b, seq_len=1024)
        p = plan(cfg, world, spec, micro_batch=b, seq_len=1024, activation_checkpointing="full" if "ac=full" in spec else "none")
        print(f"| {name}, b={b}, s=1024 | {world} | `{spec}` | {fake['total'] / 2**30:.2f} | {p.total_bytes / 2**30:.2f} | "
              f"{p.total_bytes / fake['total']:.3f} | {time.perf_counter() - t0:.0f} |")

if __name__ == "__main__":
    sections = dict(equality=equality, equality4=lambda: equality(4), memory=memory, bubble=bubble, ac=ac, fake=fake)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="*", choices=[*sections, []], default=list(sections))
    for s in ap.parse_args().sections or sections: sections[s]()
