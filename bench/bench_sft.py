"""Supervised fine-tuning, measured: the pretrained model (few-shot) against the SFT model on held-out prompts.

One command: fine-tunes `--base` for `--time-budget` seconds (the `llm_nb_sft` recipe, `--override` to change it),
then asks both models the same `--n` test prompts of every task of the suite, greedy. The pretrained model is
prompted with `--shots` solved training examples as earlier turns, and its reply is read up to its first line
break (it has never learnt where a reply ends; reading more only lowers its scores); the SFT model is asked
zero-shot and read up to its `<|im_end|>`. Prints the table (score and format compliance with 95 % intervals, n),
whether each task's intervals are disjoint, the SFT wall time, and samples: the best and worst SFT replies per
task and a base reply.

    python bench/bench_sft.py --base runs/shakespeare                 # 120 s of SFT, 300 prompts per task
    python bench/bench_sft.py --base runs/shakespeare --out runs/sft --time-budget 120 --n 300 --shots 3
"""
import argparse, shutil, tempfile, time
from dataclasses import replace
from pathlib import Path
import torch
from llm_nb.runs import load_gpt, override
from llm_nb.sft import SFTConfig, sft, load_base
from llm_nb.tasks import TASKS, evaluate_tasks, get_task, results_table, save_results

def picked(samples, k=4):
    "The samples worth keeping in a results file: the first k, the k best and the k worst"
    ranked = sorted(samples, key=lambda x: -x[2])
    return list(dict.fromkeys(samples[:k] + ranked[:k] + ranked[-k:]))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="pretrained run folder (or a transformers folder)")
    p.add_argument("--out", default=None, help="SFT run folder (default: a temporary one)")
    p.add_argument("--time-budget", type=float, default=120, help="seconds of SFT training")
    p.add_argument("--n", type=int, default=300, help="test prompts per task")
    p.add_argument("--shots", type=int, default=3, help="solved examples shown to the pretrained model")
    p.add_argument("--override", default=None, help="SFTConfig fields, e.g. 'lr=2e-3'")
    p.add_argument("--save", default=None, help="write the results (samples included) as JSON here")
    a = p.parse_args()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="bench_sft"))/"sft"
    cfg = override(SFTConfig(eval_prompts=0), a.override)
    t0 = time.time()
    rec = sft(cfg, a.base, out, time_budget=a.time_budget, verbose=False)
    wall = time.time() - t0
    base, tok = load_base(a.base)
    tuned, _ = load_gpt(out)
    t1 = time.time()
    res = {f"base, {a.shots}-shot": evaluate_tasks(base, tok, n=a.n, shots=a.shots, first_line=True),
           "SFT, 0-shot": evaluate_tasks(tuned, tok, n=a.n)}
    eval_s = time.time() - t1
    head = (f"SFT of {a.base}: {rec['step']} steps, {rec['fit_seconds']:.0f} s training, {wall:.0f} s for the whole stage "
            f"(load, data, training, checkpoint); evaluation of both models {eval_s:.0f} s; torch threads {torch.get_num_threads()}")
    print(head + "\n")
    verse = get_task("verse")
    parts = {m: {k: sum(verse.components(p, r)[k] for p, r, _, _ in mres["verse"].samples) / len(mres["verse"].samples)
                 for k in ("topic", "rhyme", "metre", "words")} for m, mres in res.items()}
    print("verse preference, its four parts (mean over the prompts): " +
          "; ".join(f"{m}: " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()) for m, d in parts.items()) + "\n")
    if a.save:
        kept = {m: {t: replace(r, samples=picked(r.samples)) for t, r in mres.items()} for m, mres in res.items()}
        save_results(kept, a.save, dict(summary=head, steps=rec["step"], fit_seconds=rec["fit_seconds"], stage_seconds=wall,
                                        eval_seconds=eval_s, verse_parts=parts, args=vars(a)))
    print(results_table(res) + "\n")
    (b, bres), (s, sres) = res.items()
    for t in TASKS:
        lo, hi = sres[t].score_ci[0], bres[t].score_ci[1]
        print(f"{t}: SFT {sres[t].score:.3f} vs base {bres[t].score:.3f}: intervals {'disjoint' if lo > hi else 'OVERLAP'}; "
              f"SFT format {sres[t].format:.3f} ({'>=' if sres[t].format >= 0.95 else '<'} 0.95)")
    print("\nsamples (prompt >>> reply [score]):")
    for t in TASKS:
        ranked = sorted(sres[t].samples, key=lambda x: -x[2])
        for label, (prompt, reply, score, _) in [("SFT best", ranked[0]), ("SFT best", ranked[1]), ("SFT worst", ranked[-1]),
                                                 ("base", bres[t].samples[0])]:
            print(f"  [{t}, {label}] {prompt!r}\n      >>> {reply!r} [{score:.2f}]")
    if not a.out: shutil.rmtree(out.parent, ignore_errors=True)

if __name__ == "__main__": main()
