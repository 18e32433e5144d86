"""PPO speed: one PPO iteration (rollout + updates) of llm_nb against TRL 1.12.0's PPOTrainer, same models and sizes.

Both run in the same invocation, one after the other: ours here, TRL's in its own environment (`.venv-trl112`, see
tests/fixtures/make_trl112_ppo.py; TRL removed PPO in 1.13) on our weights exported through `to_hf()`: the SFT policy
and reference as `GPT2LMHeadModel`, the reward and value models as `GPT2ForSequenceClassification` (GPT-NeoX's
`GPTNeoXForCausalLM` and `GPTNeoXForSequenceClassification` for rotary models, such as the `cpu` preset's), the
tokenizer with its ChatML template. Same prompts, batch, reply budget, epochs and minibatches, sampling at temperature 1, the updates in `--dtype` on both
sides (fp32, or bf16 autocast: our `PPOConfig.dtype`, TRL's `bf16=True`; rollouts in the fp32 weights on both).
Each side runs `--warmup` + `--iterations` iterations and is timed per iteration; the first `--warmup` (each side's
one-off costs: allocator, first kernels, TRL's set-up) are left out and the median of the rest is reported, with the
ratio and how ours splits into rollout and updates.

    python bench/bench_ppo_speed.py --sft runs/sft --rm runs/rm --warmup 2 --iterations 6
"""
import argparse, json, os, statistics, subprocess, tempfile, time
from pathlib import Path
import torch
from llm_nb.runs import load_gpt
from llm_nb.chat import chat_prompt, chat_token
from llm_nb.reward import load_reward_model
from llm_nb.ppo import PPOConfig, PolicyAndValue, Rollouts, RolloutCB, ppo_step_loss
from llm_nb.train import Trainer, Callback

ROOT = Path(__file__).resolve().parents[1]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True); p.add_argument("--rm", required=True)
    p.add_argument("--warmup", type=int, default=2, help="PPO iterations run first and not timed, on each side")
    p.add_argument("--iterations", type=int, default=6, help="PPO iterations timed on each side (their median is reported)")
    p.add_argument("--batch-size", type=int, default=32); p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="precision of the PPO updates on both sides")
    p.add_argument("--trl-python", default=str(ROOT/".venv-trl112/bin/python"))
    a = p.parse_args()
    cfg = PPOConfig(batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, eval_prompts=0, dtype=a.dtype)
    policy, tok = load_gpt(a.sft); ref, _ = load_gpt(a.sft)
    reward, _ = load_reward_model(a.rm); value, _ = load_reward_model(a.rm)
    for q in [*ref.parameters(), *reward.parameters()]: q.requires_grad_(False)
    model = PolicyAndValue(policy, value.train())
    rollouts = Rollouts(model, ref, reward, tok, cfg)
    n = a.warmup + a.iterations
    class IterationClock(Callback):
        "The time at the end of each PPO iteration (its last optimizer step)"
        def __init__(self): self.ends = []
        def before_fit(self, learn): self.start = time.perf_counter()
        def after_step(self, learn):
            if learn.step % cfg.steps_per_rollout == 0: self.ends.append(time.perf_counter())
    clock = IterationClock()
    learn = Trainer(model, rollouts, lambda m, b: ppo_step_loss(m, b, cfg), [RolloutCB(rollouts), clock], cfg.steps_per_rollout * n, cfg.lr,
                    min_lr_frac=1.0, weight_decay=0.0, dtype=cfg.dtype)
    learn.fit()
    ours = [b - e for e, b in zip([clock.start] + clock.ends, clock.ends)][a.warmup:]
    rollout_s = [h["rollout_seconds"] for h in learn.history if "rollout_seconds" in h][a.warmup:]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        end, pad = chat_token(tok, "<|im_end|>"), chat_token(tok, "<|pad|>")
        load_gpt(a.sft)[0].to_hf(eos_token_id=end, pad_token_id=pad).save_pretrained(d/"policy")
        load_reward_model(a.rm)[0].to_hf(pad_token_id=pad).save_pretrained(d/"reward")
        tok.to_hf().save_pretrained(d/"tokenizer")
        pool = rollouts.task.pool("train")
        g = torch.Generator().manual_seed(0)
        prompts = [chat_prompt(tok, pool[i].messages(with_answer=False), 256) for i in torch.randint(len(pool), (a.batch_size * n,), generator=g).tolist()]
        spec = dict(prompts=prompts, batch_size=cfg.batch_size, minibatches=cfg.minibatches, ppo_epochs=cfg.ppo_epochs, iterations=n,
                    max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, kl_coef=cfg.kl_coef, missing_end_penalty=cfg.missing_end_penalty, lr=cfg.lr, bf16=cfg.dtype == "bf16")
        (d/"spec.json").write_text(json.dumps(spec))
        res = subprocess.run([a.trl_python, str(ROOT/"bench"/"trl112_ppo_speed.py"), str(d)], capture_output=True, text=True)
        if res.returncode: raise SystemExit(f"TRL 1.12 run failed:\n{res.stderr[-3000:]}")
        trl = json.loads(res.stdout.strip().splitlines()[-1])
    med = statistics.median
    theirs = trl["iteration_seconds"][a.warmup:]
    print(f"PPO iteration: {cfg.batch_size} prompts, replies up to {cfg.max_new_tokens} tokens, {cfg.ppo_epochs} epochs x {cfg.minibatches} minibatches, "
          f"updates in {cfg.dtype}, {torch.get_num_threads()} threads; median over {a.iterations} iterations after {a.warmup} warm-up\n")
    print("| implementation | seconds per iteration | of which rollout | of which updates |\n|---|---|---|---|")
    print(f"| llm_nb | {med(ours):.2f} | {med(rollout_s):.2f} | {med(o - r for o, r in zip(ours, rollout_s)):.2f} |")
    print(f"| TRL {trl['trl']} PPOTrainer | {med(theirs):.2f} | | |")
    print(f"\nspeed-up: {med(theirs) / med(ours):.2f}x")

if __name__ == "__main__": main()
