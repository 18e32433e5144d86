"""Alignment, measured: the SFT model against PPO, DPO and GRPO on the same held-out prompts.

One command: runs `llm_nb_rm` then `llm_nb_ppo` (PPO's wall time and peak memory include its reward model's), `llm_nb_dpo`
and `llm_nb_grpo` (once per reward task of `--grpo-tasks`) on `--sft`, each in its own process so that its wall time and
peak memory are its own, then asks every model the same `--n` test prompts of every task of the suite, greedy, and
scores them with the gold scorers. Prints one table: the gold score of the preference task (verse), the accuracy of
the verifiable task (arithmetic), the play quiz, each with a 95 % interval over n prompts; DPO's implicit-reward
accuracy on held-out pairs; the KL of each policy to the SFT model (the mean over sampled replies to `--n` held-out
prompts of log π(y|x) − log π_sft(y|x), summed over the reply's tokens, y ~ π at temperature 1); wall time and peak
resident memory of each stage. `--save` keeps the table, the per-step logs (for the chapters' figures) and samples.

    python bench/bench_alignment.py --sft runs/sft        # 60 s RM + 90 s PPO, 60 s DPO, 90 s GRPO per task, 300 prompts
    python bench/bench_alignment.py --sft runs/sft --rm-budget 60 --ppo-budget 90 --dpo-budget 60 --grpo-budget 90 --grpo-tasks arithmetic,verse --n 300 --save bench/results/alignment.json
"""
import argparse, os, subprocess, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
import torch
from llm_nb.chat import generate_replies
from llm_nb.dpo import token_logps
from llm_nb.runs import load_gpt
from llm_nb.sft import load_base
from llm_nb.tasks import evaluate_tasks, get_task, save_results
from llm_nb.train import read_metrics

def run_stage(argv:list[str]) -> tuple[float, float]:
    "Run a console script's function in a child process; its wall seconds and peak resident memory (MiB)"
    module, func = argv[0]
    t0 = time.time()
    p = subprocess.Popen([sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())", *argv[1:]])
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode: raise SystemExit(f"{func} failed with exit status {p.returncode}")
    return time.time() - t0, usage.ru_maxrss / 1024

@torch.no_grad()
def kl_to(policy, ref, tok, n:int, tasks=("verse", "arithmetic"), seed:int=1) -> float:
    "Mean over sampled replies (temperature 1) to n test prompts per task of log π(y|x) − log π_ref(y|x), nats per reply"
    total, count = 0.0, 0
    for name in tasks:
        task = get_task(name)
        replies = generate_replies(policy, tok, [e.messages(with_answer=False) for e in task.examples("test", n, seed)],
                                   task.max_new_tokens, temperature=1.0, seed=seed)
        for b in range(0, len(replies), 64):
            rows = replies[b:b + 64]
            T = max(len(r.prompt_ids) + len(r.ids) for r in rows)
            ids = torch.tensor([r.prompt_ids + r.ids + [0] * (T - len(r.prompt_ids) - len(r.ids)) for r in rows])
            mask = torch.tensor([[0] * len(r.prompt_ids) + [1] * len(r.ids) + [0] * (T - len(r.prompt_ids) - len(r.ids)) for r in rows])
            total += (token_logps(policy, ids, mask) - token_logps(ref, ids, mask)).sum().item()
            count += len(rows)
    return total / count

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True, help="the SFT run folder")
    p.add_argument("--out", default=None, help="folder for the DPO and GRPO runs (default: a temporary one)")
    p.add_argument("--rm-budget", type=float, default=60, help="seconds of reward-model training (PPO's reward)")
    p.add_argument("--ppo-budget", type=float, default=90, help="seconds of PPO training (0: no PPO)")
    p.add_argument("--ppo-override", default=None, help="PPOConfig fields")
    p.add_argument("--dpo-budget", type=float, default=60, help="seconds of DPO training")
    p.add_argument("--grpo-budget", type=float, default=90, help="seconds of each GRPO run")
    p.add_argument("--dpo-override", default=None, help="DPOConfig fields")
    p.add_argument("--grpo-override", default=None, help="GRPOConfig fields")
    p.add_argument("--grpo-tasks", default="arithmetic,verse", help="a GRPO run for each of these tasks' rewards")
    p.add_argument("--n", type=int, default=300, help="test prompts per task")
    p.add_argument("--save", default=None, help="write the results as JSON here")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_alignment"))
    stages = {**({"PPO": (("llm_nb.ppo", "ppo_cli"), "ppo", a.ppo_budget, a.ppo_override)} if a.ppo_budget else {}),
              "DPO": (("llm_nb.dpo", "dpo_cli"), "dpo", a.dpo_budget, a.dpo_override),
              **{f"GRPO ({t})": (("llm_nb.grpo", "grpo_cli"), f"grpo_{t}", a.grpo_budget, ",".join(x for x in (f"task={t}", a.grpo_override) if x))
                 for t in a.grpo_tasks.split(",")}}
    cost, rm = {}, []
    if a.ppo_budget:
        rm_cost = run_stage([("llm_nb.reward", "rm_cli"), "--sft", a.sft, "--out", str(out/"rm"), "--time-budget", str(a.rm_budget), "--quiet"])
        rm = [r for r in read_metrics(out/"rm"/"metrics.jsonl") if r.get("final")]
    for label, (script, name, budget, extra) in stages.items():
        spec = ",".join(x for x in ("eval_prompts=0", extra) if x)
        more = ["--rm", str(out/"rm")] if label == "PPO" else []
        cost[label] = run_stage([script, "--sft", a.sft, *more, "--out", str(out/name), "--time-budget", str(budget), "--override", spec, "--quiet"])
    if a.ppo_budget: cost["PPO"] = (cost["PPO"][0] + rm_cost[0], max(cost["PPO"][1], rm_cost[1]))   # with its reward model
    sft_model, tok = load_base(a.sft)
    models = {"SFT": sft_model, **{label: load_gpt(out/name)[0] for label, (_, name, _, _) in stages.items()}}
    t0 = time.time()
    results = {label: evaluate_tasks(m, tok, n=a.n) for label, m in models.items()}
    kls = {label: kl_to(m, sft_model, tok, a.n) for label, m in models.items()}
    eval_s = time.time() - t0
    logs = {label: [r for r in read_metrics(out/name/"metrics.jsonl")] for label, (_, name, _, _) in stages.items()}
    finals = {label: next(r for r in log if r.get("final")) for label, log in logs.items()}
    ci = lambda r: f"{r.score:.3f} [{r.score_ci[0]:.3f}, {r.score_ci[1]:.3f}]"
    rows = ["| model | verse gold score | arithmetic accuracy | play accuracy | held-out pair accuracy | KL to SFT (nats/reply) | steps | wall s | peak MiB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for label, res in results.items():
        f = finals.get(label, {})
        wall, mem = cost.get(label, (None, None))
        acc = (f"{f['heldout_accuracy']:.3f} (n={f['heldout_pairs']})" if "heldout_accuracy" in f else
               f"RM {rm[0]['heldout_acc']:.3f} (n={rm[0]['heldout_n']})" if label == "PPO" and rm else "–")
        rows.append(f"| {label} | {ci(res['verse'])} | {ci(res['arithmetic'])} | {ci(res['play'])} | {acc} | {kls[label]:.2f} | "
                    f"{f.get('step', '–')} | {f'{wall:.0f}' if wall else '–'} | {f'{mem:.0f}' if mem else '–'} |")
    ppo = f"PPO {a.ppo_budget:.0f} s (after {a.rm_budget:.0f} s of its reward model), " if a.ppo_budget else ""
    head = (f"SFT {a.sft}; n = {a.n} test prompts per task, greedy; {ppo}DPO {a.dpo_budget:.0f} s and GRPO {a.grpo_budget:.0f} s (per reward) of training "
            f"(wall time includes loading, sampling pairs, the reference pass, checkpoints); evaluation of all models {eval_s:.0f} s; "
            f"torch threads {torch.get_num_threads()}")
    table = "\n".join(rows)
    print(head + "\n\n" + table)
    if a.save:
        trimmed = {label: {t: replace(r, samples=r.samples[:6]) for t, r in res.items()} for label, res in results.items()}
        save_results(trimmed, a.save, meta=dict(summary=head, table=table, args=vars(a), kl=kls, cost=cost, finals=finals,
                                                logs={label: [r for r in log if not r.get("final")] for label, log in logs.items()}))

if __name__ == "__main__": main()
