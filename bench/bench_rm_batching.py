"""Reward-model batching: shuffled pairs against InstructGPT's prompt-per-element batches, on the same pairs and steps.

Samples `--k` replies to each of `--prompts` verse training prompts from the SFT model once (the `llm_nb_rm` recipe:
every pair labelled by the simulated labeller at tau), then trains two reward models from the SFT weights for
`--steps` steps each, both scoring 64 replies a step: *pairs* — 32 pairs a step from the shuffled list of all pairs
(each reply scored once per pair it is in) — and *by prompt* — 8 prompts a step, each reply scored once and every
pair of the prompt in the loss (`ComparisonBatches`). Every `--eval-every` steps both are asked to order the
held-out pairs (replies to test prompts, noise-free gold order); prints the curves and the final table.

    python bench/bench_rm_batching.py --sft runs/sft --steps 150
"""
import argparse, time
from functools import partial
import torch
from llm_nb.sft import load_base
from llm_nb.chat import chat_token
from llm_nb.reward import RMConfig, RewardModel, sample_pairs, encode_pairs, encode_comparisons, ComparisonBatches, rm_loss, pair_accuracy
from llm_nb.tasks import wilson_interval
from llm_nb.train import Trainer, Callback

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True, help="SFT run folder")
    p.add_argument("--prompts", type=int, default=RMConfig.prompts); p.add_argument("--k", type=int, default=RMConfig.k)
    p.add_argument("--steps", type=int, default=150); p.add_argument("--eval-every", type=int, default=25)
    a = p.parse_args()
    cfg = RMConfig(prompts=a.prompts, k=a.k)
    policy, tok = load_base(a.sft)
    t0 = time.time()
    rows = sample_pairs(policy, tok, cfg.task, "train", cfg.prompts, cfg.k, cfg.tau, cfg.temperature, cfg.seed)
    held_rows = sample_pairs(policy, tok, cfg.task, "test", cfg.heldout_prompts, cfg.k, 0.0, cfg.temperature, cfg.seed + 1)
    block, pad = policy.config.block_size, chat_token(tok, "<|pad|>")
    held, train_pairs = encode_pairs(tok, held_rows, block), encode_pairs(tok, rows, block)
    by_prompt = encode_comparisons(tok, rows, block)
    print(f"{len(train_pairs):,} training pairs over {len(by_prompt)} prompts, {len(held):,} held-out pairs, sampled in {time.time() - t0:.0f} s\n", flush=True)
    variants = {"pairs (32 a step)": ComparisonBatches([([c, r], [(0, 1)]) for c, r in train_pairs], 32, pad, cfg.seed),
                "by prompt (8 a step)": ComparisonBatches(by_prompt, 8, pad, cfg.seed)}
    results = {}
    for name, batches in variants.items():
        curve = []
        class Probe(Callback):
            def after_step(self, learn):
                if learn.step % a.eval_every == 0 or learn.step == learn.max_steps:
                    curve.append((learn.step, pair_accuracy(learn.raw_model, held, pad)[0]))
        torch.manual_seed(cfg.seed)
        model = RewardModel.from_gpt(policy)
        t0 = time.time()
        learn = Trainer(model, batches, partial(rm_loss, center_coef=cfg.center_coef), [Probe()], a.steps, cfg.lr, cfg.warmup,
                        cfg.min_lr_frac, cfg.weight_decay, grad_clip=cfg.grad_clip, dtype=cfg.dtype)
        learn.fit()
        seconds = time.time() - t0   # the probes' evaluations included
        results[name] = dict(curve=curve, seconds=seconds, train=pair_accuracy(learn.raw_model, train_pairs[:1000], pad)[0])
        print(f"{name}: " + ", ".join(f"step {s} {acc:.3f}" for s, acc in curve), flush=True)
    n = len(held)
    print(f"\n{a.steps} steps of 64 replies each, {cfg.prompts} prompts x {cfg.k} replies, tau {cfg.tau}; held-out: {n} noise-free pairs\n")
    print("| batching | held-out accuracy at the end | 95 % interval | best on the way (step) | training-pair accuracy | seconds |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        acc = r["curve"][-1][1]; lo, hi = wilson_interval(round(acc * n), n)
        best = max(r["curve"], key=lambda x: x[1])
        print(f"| {name} | {acc:.3f} | [{lo:.3f}, {hi:.3f}] | {best[1]:.3f} ({best[0]}) | {r['train']:.3f} | {r['seconds']:.0f} |")

if __name__ == "__main__": main()
