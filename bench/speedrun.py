"""The CPU speedrun's record (chapter 07a): one row per change, each a real five-minute `llm_nb_train` run.

Every row is chapter 07's recipe (`--preset cpu-gpt2`) with an override; the rows accumulate the changes that paid,
and a row marked `dropped` is measured on top of the row before it and then left out. `--run` trains every row whose
run folder is missing, one after another (each one a separate command, under `--lock` if given, so that no other
heavy job shares the CPU); without it the script prints the table from the run folders and writes the loss
curves of the first and the last kept row to `--curves` (the data of chapter 07a's figure).

    python bench/speedrun.py --run --lock /work/cpu.lock    # ~6 minutes per missing row
    python bench/speedrun.py                                # the markdown table
"""
import argparse, json, subprocess, sys
from pathlib import Path

M = "optimizer=muon,muon_lr=0.02"
U = M + ",tie_weights=False,embed_lr=0.02"
R = U + ",pos=rope"
ROWS = [  # (run name, what changed, override of the cpu-gpt2 preset, kept)
    ("base", "chapter 07's `cpu` recipe: GPT-2, 2 layers × 256, AdamW, cosine", "", True),
    ("muon", "+ Muon (lr 0.02) for the blocks' matrices, AdamW for the rest", M, True),
    ("untied", "+ untied head, embeddings at AdamW lr 0.02", U, True),
    ("rope", "+ rotary positions", R, True),
]

def final_record(folder:Path) -> dict|None:
    "The `final` line of a run's metrics.jsonl, or None while the run is missing or unfinished"
    path = folder/"metrics.jsonl"
    if not path.exists(): return None
    records = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    return records[-1] if records and records[-1].get("final") else None

def table(root:Path) -> str:
    lines = ["| recipe | steps | tokens | tokens/s | val bits/byte |", "|---|---:|---:|---:|---:|"]
    for name, label, _, kept in ROWS:
        r = final_record(root/name)
        if r is None: lines.append(f"| {label} | | | | (not run) |"); continue
        bpb = f"{r['val_bpb']:.3f}" if kept else f"{r['val_bpb']:.3f} (dropped)"
        lines.append(f"| {label} | {r['step']} | {r['tokens'] / 1e6:.2f}M | {r['tokens'] / r['fit_seconds'] / 1e3:.1f}k | {bpb} |")
    return "\n".join(lines)

def curves(root:Path) -> dict:
    "Train loss and validation bits/byte against tokens for the first and the last kept row"
    kept = [(name, label) for name, label, _, k in ROWS if k]
    out = {}
    for name, label in (kept[0], kept[-1]):
        recs = [json.loads(l) for l in (root/name/"metrics.jsonl").read_text().splitlines() if l.strip()]
        steps = [r for r in recs if not r.get("final")]
        out[name] = dict(label=label, tokens=[r["tokens"] for r in steps], loss=[round(r["loss"], 4) for r in steps],
                         val_tokens=[r["tokens"] for r in steps if "val_bpb" in r], val_bpb=[round(r["val_bpb"], 4) for r in steps if "val_bpb" in r],
                         final_bpb=recs[-1]["val_bpb"])
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="runs/speedrun", help="folder of the run folders")
    p.add_argument("--run", action="store_true", help="train the rows whose folders are missing")
    p.add_argument("--lock", help="run each training under `flock LOCK`")
    p.add_argument("--curves", default="bench/speedrun_curves.json", help="where the figure's data goes")
    a = p.parse_args()
    root = Path(a.root)
    if a.run:
        for name, _, override, _ in ROWS:
            if final_record(root/name): continue
            cmd = ["llm_nb_train", "--preset", "cpu-gpt2", "--time-budget", "300", "--out", str(root/name), "--override", override, "--quiet"]
            if a.lock: cmd = ["flock", a.lock] + cmd
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    print(table(root))
    if all(final_record(root/name) for name, *_ in ROWS):
        Path(a.curves).write_text(json.dumps(curves(root)) + "\n")

if __name__ == "__main__": main()
