"""RLHF, measured: a reward model from simulated preferences, then PPO against it, judged by the gold scorer.

One command, one run: trains a reward model from `--sft` (the `llm_nb_rm` recipe: pairs of the SFT model's verse
replies labelled by the gold scorer with Bradley-Terry noise tau) and reports its held-out pair accuracy against the
noise-free gold order; then, for each `--kl-coefs` value, runs PPO (`llm_nb_ppo`) for `--ppo-budget` seconds and
reports the held-out gold score of the final policy next to the SFT model's on the same `--n` test prompts (greedy, and
one reply sampled at the rollouts' temperature, the distribution PPO optimises; 95 % intervals), the KL to the reference of the last rollout, and where the time went. The rollouts' reward-model
score and gold score against their KL form the over-optimisation figure (`--figure`).

    python bench/bench_rlhf.py --sft runs/sft --out runs/bench_rlhf --n 100 --save bench/results/rlhf.json
"""
import argparse, json, time
from pathlib import Path
import torch
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
from llm_nb.runs import load_gpt, override
from llm_nb.reward import RMConfig, train_reward_model, load_reward_model, encode_pairs, pair_accuracy
from llm_nb.chat import chat_token
from llm_nb.ppo import PPOConfig, ppo
from llm_nb.tasks import evaluate_tasks, get_task, wilson_interval
from llm_nb.train import read_metrics

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True, help="SFT run folder")
    p.add_argument("--out", required=True, help="folder for the reward-model and PPO runs (must not hold them yet)")
    p.add_argument("--rm-budget", type=float, default=60, help="seconds of reward-model training")
    p.add_argument("--ppo-budget", type=float, default=120, help="seconds of PPO per KL coefficient")
    p.add_argument("--kl-coefs", default="0.05", help="comma-separated KL coefficients, one PPO run each")
    p.add_argument("--n", type=int, default=100, help="held-out verse prompts for the gold evaluation")
    p.add_argument("--noise-sweep", default="", help="comma-separated labeller noise levels tau: one more reward model each (its accuracy only)")
    p.add_argument("--rm-override", default=None); p.add_argument("--ppo-override", default=None)
    p.add_argument("--save", default=None, help="write the results as JSON here")
    p.add_argument("--figure", default=None, help="write the over-optimisation figure (PNG) here")
    p.add_argument("--rm-figure", default=None, help="write the reward-model figure (reward vs gold, calibration) here")
    a = p.parse_args()
    out = Path(a.out)
    t0 = time.time()
    rm = train_reward_model(override(RMConfig(), a.rm_override), a.sft, out/"rm", time_budget=a.rm_budget, verbose=False)
    rm_wall = time.time() - t0
    rm_model, rm_tok = load_reward_model(out/"rm")
    held_rows = [json.loads(l) for l in (out/"rm"/"heldout.jsonl").read_text().splitlines()]
    held = encode_pairs(rm_tok, held_rows, rm_model.config.block_size)
    acc, rc, rr = pair_accuracy(rm_model, held, chat_token(rm_tok, "<|pad|>"))
    gold = torch.tensor([[r["gold_chosen"], r["gold_rejected"]] for r in held_rows])
    reward = torch.stack([rc, rr], 1)
    pearson = torch.corrcoef(torch.stack([reward.flatten(), gold.flatten()]))[0, 1].item()
    p_pred = torch.sigmoid(rc - rr)             # the model's probability that the chosen (higher-gold) reply wins
    tau = RMConfig(**json.loads((out/"rm"/"run.json").read_text())["args"]["cfg"]).tau
    p_true = torch.sigmoid((gold[:, 0] - gold[:, 1]) / tau) if tau > 0 else torch.ones(len(gold))   # the labeller's own probability
    edges = torch.linspace(0, 1, 6)
    calib = [(lo.item(), hi.item(), int(sel.sum()), p_pred[sel].mean().item(), p_true[sel].mean().item())
             for lo, hi in zip(edges[:-1], edges[1:]) if (sel := (p_pred >= lo) & ((p_pred < hi) | (hi == 1))).any()]
    gap, right = gold[:, 0] - gold[:, 1], rc > rr       # how far apart the gold scores of a held-out pair are
    gaps = [0, 0.05, 0.1, 0.2, 1]
    by_gap = [(lo, hi, int(sel.sum()), right[sel].float().mean().item()) for lo, hi in zip(gaps[:-1], gaps[1:]) if (sel := (gap > lo) & (gap <= hi)).any()]
    task = get_task(RMConfig().task)                    # which part of the gold preference the reward model follows
    parts = [[task.components(r["prompt"][-1]["content"], r[k][-1]["content"]) for k in ("chosen", "rejected")] for r in held_rows]
    by_part = []
    for name in parts[0][0]:
        sel = torch.tensor([abs(c[name] - x[name]) > 0.2 for c, x in parts])
        agree = torch.tensor([c[name] > x[name] for c, x in parts]) == right
        if sel.any(): by_part.append((name, int(sel.sum()), agree[sel].float().mean().item()))
    if a.rm_figure:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
        axes[0].scatter(gold.flatten(), reward.flatten(), s=6, alpha=0.5)
        axes[0].set_xlabel("gold score"); axes[0].set_ylabel("reward-model score"); axes[0].set_title(f"held-out replies (Pearson r = {pearson:.2f})")
        d = (rc - rr).numpy()
        axes[1].hist(d, bins=30); axes[1].axvline(0, color="gray", ls=":")
        axes[1].set_xlabel("r_chosen - r_rejected (chosen = higher gold)"); axes[1].set_title(f"held-out pairs: {acc:.1%} ordered right")
        fig.tight_layout(); fig.savefig(a.rm_figure)
    sweep = []
    for noise in [float(x) for x in a.noise_sweep.split(",") if x]:
        r = train_reward_model(override(RMConfig(tau=noise), a.rm_override), a.sft, out/f"rm_tau{noise}", time_budget=a.rm_budget, verbose=False)
        sweep.append(dict(tau=noise, acc=r["heldout_acc"], ci=r["heldout_acc_ci"], n=r["heldout_n"], pairs=r["train_pairs"], steps=r["step"]))
    sft_model, tok = load_gpt(a.sft)
    sft_res = evaluate_tasks(sft_model, tok, tasks=("verse",), n=a.n)["verse"]
    sft_sampled = evaluate_tasks(sft_model, tok, tasks=("verse",), n=a.n, temperature=PPOConfig().temperature)["verse"]
    rows = [dict(model="SFT", kl_coef=None, steps=0, gold=sft_res.score, gold_ci=sft_res.score_ci, n=sft_res.n, kl=0.0,
                 gold_sampled=sft_sampled.score, gold_sampled_ci=sft_sampled.score_ci)]
    curves = {}
    for beta in [float(x) for x in a.kl_coefs.split(",") if x]:
        t1 = time.time()
        cfg = override(PPOConfig(kl_coef=beta, eval_prompts=a.n), a.ppo_override)
        rec = ppo(cfg, a.sft, out/"rm", out/f"ppo_kl{beta}", time_budget=a.ppo_budget, verbose=False)
        hist = [r for r in read_metrics(out/f"ppo_kl{beta}"/"metrics.jsonl") if "rollout" in r]
        curves[beta] = hist
        rows.append(dict(model=f"PPO beta={beta}", kl_coef=beta, steps=rec["step"], gold=rec["gold"], gold_ci=rec["gold_ci"], n=rec["gold_n"],
                         gold_sampled=rec["gold_sampled"], gold_sampled_ci=rec["gold_sampled_ci"], kl=hist[-1]["kl"], rollouts=len(hist), wall=time.time() - t1, fit_seconds=rec["fit_seconds"],
                         rollout_seconds=sum(h["rollout_seconds"] for h in hist)))
    print(f"reward model: {rm['train_pairs']} training pairs, {rm['step']} steps in {rm['fit_seconds']:.0f} s ({rm_wall:.0f} s with sampling); "
          f"held-out pair accuracy (noise-free gold order) {rm['heldout_acc']:.3f} [{rm['heldout_acc_ci'][0]:.3f}, {rm['heldout_acc_ci'][1]:.3f}] "
          f"over {rm['heldout_n']} pairs; train accuracy {rm['train_acc']:.3f}\n")
    if sweep:
        print("| labeller noise tau | training pairs | RM steps | held-out pair accuracy | 95 % interval | held-out pairs |\n|---|---|---|---|---|---|")
        for r in [dict(tau=RMConfig().tau if not a.rm_override else None, acc=rm["heldout_acc"], ci=rm["heldout_acc_ci"], n=rm["heldout_n"],
                       pairs=rm["train_pairs"], steps=rm["step"])] + sweep:
            print(f"| {r['tau']} | {r['pairs']} | {r['steps']} | {r['acc']:.3f} | [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['n']} |")
        print()
    print(f"reward vs gold on the {len(held_rows) * 2} held-out replies: Pearson r = {pearson:.3f}")
    print(f"calibration on the held-out pairs: the model's P(higher-gold reply wins) = sigmoid(r_c - r_r), binned, against the "
          f"labeller's own probability sigmoid((g_c - g_r) / tau) at the training tau = {tau}")
    print("| predicted P | pairs | mean predicted | mean labeller P |\n|---|---|---|---|")
    for lo, hi, n, m, t in calib: print(f"| [{lo:.1f}, {hi:.1f}) | {n} | {m:.3f} | {t:.3f} |")
    print("\nheld-out pair accuracy by the gap between the two gold scores\n| gold gap | pairs | accuracy | 95 % interval |\n|---|---|---|---|")
    for lo, hi, n, acc_gap in by_gap:
        ci = wilson_interval(round(acc_gap * n), n)
        print(f"| ({lo:g}, {hi:g}] | {n} | {acc_gap:.3f} | [{ci[0]:.3f}, {ci[1]:.3f}] |")
    print("\nwhere one part of the gold preference differs by more than 0.2 between the two replies: how often the reward model orders them as that part does")
    print("| part | pairs | agreement |\n|---|---|---|")
    for name, n, agree in by_part: print(f"| {name} | {n} | {agree:.3f} |")
    print()
    print("| model | PPO steps (rollouts) | held-out gold, greedy | 95 % interval | held-out gold, sampled | 95 % interval | n | KL to SFT per reply (last rollout) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['steps']} ({r.get('rollouts', 0)}) | {r['gold']:.3f} | [{r['gold_ci'][0]:.3f}, {r['gold_ci'][1]:.3f}] | "
              f"{r['gold_sampled']:.3f} | [{r['gold_sampled_ci'][0]:.3f}, {r['gold_sampled_ci'][1]:.3f}] | {r['n']} | {r['kl']:.2f} |")
    for r in rows[1:]:
        print(f"\n{r['model']}: {r['fit_seconds']:.0f} s of PPO = {r['rollout_seconds']:.0f} s rollouts (sampling + scoring) + "
              f"{r['fit_seconds'] - r['rollout_seconds']:.0f} s updates; {r['fit_seconds'] / r['rollouts']:.1f} s per iteration")
    for beta, hist in curves.items():
        print(f"\nbeta={beta}: rollout (KL, RM score, gold): " + ", ".join(f"({h['kl']:.2f}, {h['score']:.2f}, {h['gold']:.2f})" for h in hist[:: max(1, len(hist) // 10)]))
    if a.figure:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
        for beta, hist in curves.items():
            kl = [h["kl"] for h in hist]
            axes[0].plot(kl, [h["score"] for h in hist], "o-", ms=3, label=f"β = {beta}")
            axes[1].plot(kl, [h["gold"] for h in hist], "o-", ms=3, label=f"β = {beta}")
        axes[0].set_title("proxy: reward-model score"); axes[1].set_title("gold score (the task's scorer)")
        for ax in axes: ax.set_xlabel("KL(policy ‖ SFT) per reply, nats"); ax.legend(fontsize=8)
        axes[1].axhline(sft_sampled.score, color="gray", ls=":", lw=1, label="SFT (held-out, sampled)"); axes[1].legend(fontsize=8)
        fig.tight_layout(); fig.savefig(a.figure)
    if a.save:
        Path(a.save).write_text(json.dumps(dict(rm={k: v for k, v in rm.items()}, rm_wall=rm_wall, rows=rows, rm_pearson=pearson, calibration=calib, by_gap=by_gap, by_part=by_part, noise_sweep=sweep, curves=curves, args=vars(a)), indent=1) + "\n")

if __name__ == "__main__": main()
