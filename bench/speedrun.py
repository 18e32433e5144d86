"""The CPU speedrun's record (chapter 07a): one row per change, each a real five-minute `llm_nb_train` run.

Every row is chapter 07's recipe (`--preset cpu_gpt2`) with an override; the rows accumulate the changes that paid, and
a row marked `dropped` is measured on top of the row before it and then left out. The last row is `--preset cpu`
itself, a fresh run of the recipe the kept rows add up to (the preset was named `speedrun` when the chapter's table was
measured). `--run` trains every row whose run folder is missing, one
after another (each one a separate command, under `flock LOCK` if `--lock` is given, so that no other heavy job
shares the CPU); without it the script prints the table from the run folders and writes the loss curves of the
first and the last row to `--curves` (the data of chapter 07a's figure). Tokens/s and bits/byte are also given as
a ratio to the first row, measured by the same command on the same machine.

    python bench/speedrun.py --run --lock /work/cpu.lock    # ~5.5 minutes per missing row
    python bench/speedrun.py                                # the markdown table
    python bench/speedrun.py --pilots [--run --lock ...]    # the pilots: each trick alone, 300 steps (~2.5 min each)
"""
import argparse, json, subprocess
from pathlib import Path

M = "optimizer=muon,muon_lr=0.02"
U = M + ",tie_weights=False,embed_lr=0.02"
R = U + ",pos=rope"
V = R + ",vocab_size=2048"
ROWS = [  # (run name, what changed, preset, override, kept)
    ("base", "chapter 07's recipe (`cpu_gpt2`): GPT-2, BPE 4,096, 2 layers × 256, AdamW, cosine", "cpu_gpt2", "", True),
    ("muon", "+ Muon (lr 0.02) for the blocks' matrices, AdamW for the rest", "cpu_gpt2", M, True),
    ("untied", "+ untied head, embeddings at AdamW lr 0.02", "cpu_gpt2", U, True),
    ("rope", "+ rotary positions", "cpu_gpt2", R, True),
    ("vocab2048", "+ BPE 2,048 (a smaller head)", "cpu_gpt2", V, True),
    ("tuned", "+ embeddings at lr 0.05, warmup 30 steps", "cpu_gpt2", V.replace("embed_lr=0.02", "embed_lr=0.05") + ",warmup=30", True),
    ("speedrun", "**`--preset cpu`**: the row above as a preset, a fresh run", "cpu", "", True),
]
PILOT_STEPS = 300
PILOTS = [  # short pilots, all PILOT_STEPS steps (the same 1.23M tokens): (run name, change, override, run it is compared with)
    ("p_base", "chapter 07's recipe, `cpu_gpt2` (AdamW)", "", "p_muon02"),
    ("p_muon02", "Muon, lr 0.02", M, "p_muon02"),
    ("p_muon01", "Muon, lr 0.01", "optimizer=muon,muon_lr=0.01", "p_muon02"),
    ("p_muon04", "Muon, lr 0.04", "optimizer=muon,muon_lr=0.04", "p_muon02"),
    ("p_untied_e006", "Muon + untied head, embeddings at lr 0.006", M + ",tie_weights=False,embed_lr=0.006", "p_muon02"),
    ("p_untied_e02", "Muon + untied head, embeddings at lr 0.02", U, "p_muon02"),
    ("p_rope", "Muon + rotary positions", M + ",pos=rope", "p_muon02"),
    ("p_qk", "Muon + QK-norm", M + ",qk_norm=True", "p_muon02"),
    ("p_relu2", "Muon + ReLU²", M + ",mlp=relu2", "p_muon02"),
    ("p_zero", "Muon + zero-initialised projections", M + ",zero_init=True", "p_muon02"),
    ("p_ve", "Muon + value embeddings", M + ",value_embed=True", "p_muon02"),
    ("p_cap", "Muon + logit soft-cap 15", M + ",softcap=15.0", "p_muon02"),
    ("p_wsd", "Muon + warmup-stable-decay to 0", M + ",schedule=wsd,min_lr_frac=0.0", "p_muon02"),
    ("s1", "Muon + untied head (lr 0.02) + rotary", R, "s1"),
    ("s1_e05", "same, embeddings at lr 0.05", R.replace("embed_lr=0.02", "embed_lr=0.05"), "s1"),
    ("s1_wu30", "same, warmup 30 steps", R + ",warmup=30", "s1"),
    ("s1_lr4", "same, AdamW lr 4e-3 (head, gains, biases)", R + ",lr=0.004", "s1"),
    ("s1_wd0", "same, no weight decay", R + ",weight_decay=0.0", "s1"),
]

def final_record(folder:Path) -> dict|None:
    "The `final` line of a run's metrics.jsonl, or None while the run is missing or unfinished"
    path = folder/"metrics.jsonl"
    if not path.exists(): return None
    records = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    return records[-1] if records and records[-1].get("final") else None

def pilot_table(root:Path) -> str:
    "The pilots as a markdown table: bits/byte after the same steps, and the change from the run each is compared with"
    lines = ["| change | val bits/byte | vs reference |", "|---|---:|---:|"]
    for name, label, _, ref in PILOTS:
        r, b = final_record(root/name), final_record(root/ref)
        if r is None: lines.append(f"| {label} | (not run) | |"); continue
        vs = "reference" if name == ref else "" if b is None else f"{r['val_bpb'] - b['val_bpb']:+.3f}"
        lines.append(f"| {label} | {r['val_bpb']:.3f} | {vs} |")
    return "\n".join(lines)

def table(root:Path) -> str:
    "The record as a markdown table; ratios are to the first row"
    lines = ["| recipe | steps | tokens | tokens/s (× base) | val bits/byte (× base) |", "|---|---:|---:|---:|---:|"]
    base = final_record(root/ROWS[0][0])
    for name, label, _, _, kept in ROWS:
        r = final_record(root/name)
        if r is None: lines.append(f"| {label} | | | | (not run) |"); continue
        speed = r["tokens"] / r["fit_seconds"]
        ratio = lambda x, b: f" ({x / b:.2f}×)" if base else ""
        bpb = f"{r['val_bpb']:.3f}{ratio(r['val_bpb'], base['val_bpb'] if base else 1)}" + ("" if kept else " dropped")
        lines.append(f"| {label} | {r['step']} | {r['tokens'] / 1e6:.2f}M | {speed / 1e3:.1f}k"
                     f"{ratio(speed, base['tokens'] / base['fit_seconds'] if base else 1)} | {bpb} |")
    return "\n".join(lines)

def curves(root:Path) -> dict:
    "Train loss (nats/token) and validation bits/byte against steps for the first and the last row, with each run's totals"
    out = {}
    for name, label, *_ in (ROWS[0], ROWS[-1]):
        recs = [json.loads(l) for l in (root/name/"metrics.jsonl").read_text().splitlines() if l.strip()]
        steps, final = [r for r in recs if not r.get("final")], recs[-1]
        out[name] = dict(label=label, steps=[r["step"] for r in steps], loss=[round(r["loss"], 4) for r in steps],
                         val_steps=[r["step"] for r in steps if "val_bpb" in r], val_bpb=[round(r["val_bpb"], 4) for r in steps if "val_bpb" in r],
                         fit_seconds=final["fit_seconds"], final_loss=final["val_loss"], final_bpb=final["val_bpb"])
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="runs/speedrun", help="folder of the run folders")
    p.add_argument("--run", action="store_true", help="train the rows whose folders are missing")
    p.add_argument("--lock", help="run each training under `flock LOCK`")
    p.add_argument("--pilots", action="store_true", help=f"the pilots instead: each trick alone, {PILOT_STEPS} steps")
    p.add_argument("--curves", default="bench/speedrun_curves.json", help="where the figure's data goes")
    a = p.parse_args()
    root = Path(a.root)
    if a.pilots:
        root = Path(a.root)/"pilots"
        for name, _, override, _ in PILOTS if a.run else ():
            if final_record(root/name): continue
            cmd = ["llm_nb_train", "--preset", "cpu_gpt2", "--max-steps", str(PILOT_STEPS), "--out", str(root/name), "--quiet"] + (["--override", override] if override else [])
            if a.lock: cmd = ["flock", a.lock] + cmd
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        return print(pilot_table(root))
    if a.run:
        for name, _, preset, override, _ in ROWS:
            if final_record(root/name): continue
            cmd = ["llm_nb_train", "--preset", preset, "--time-budget", "300", "--out", str(root/name), "--quiet"]
            if override: cmd += ["--override", override]
            if a.lock: cmd = ["flock", a.lock] + cmd
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    print(table(root))
    if final_record(root/ROWS[0][0]) and final_record(root/ROWS[-1][0]):
        Path(a.curves).write_text(json.dumps(curves(root)) + "\n")

if __name__ == "__main__": main()
