"""PPO speed: one PPO iteration (rollout + updates) of llm_nb against TRL 1.12.0's PPOTrainer, same models and sizes.

Both run in the same invocation, one after the other: ours here, TRL's in its own environment (`.venv-trl112`, see
tests/fixtures/make_trl112_ppo.py; TRL removed PPO in 1.13) on our weights exported through `to_hf()`: the SFT policy
and reference as `GPT2LMHeadModel`, the reward and value models as `GPT2ForSequenceClassification`, the tokenizer
with its ChatML template. Same prompts, batch, reply budget, epochs and minibatches, fp32, sampling at temperature 1.
Prints seconds per iteration for each and the ratio, and how ours splits into rollout and updates.

    python bench/bench_ppo_speed.py --sft runs/sft --rm runs/rm --iterations 2
"""
import argparse, json, os, subprocess, tempfile, time
from pathlib import Path
import torch
from llm_nb.runs import load_gpt
from llm_nb.chat import chat_prompt, chat_token
from llm_nb.reward import load_reward_model
from llm_nb.ppo import PPOConfig, PolicyAndValue, Rollouts, RolloutCB, ppo_step_loss
from llm_nb.train import Trainer

ROOT = Path(__file__).resolve().parents[1]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True); p.add_argument("--rm", required=True)
    p.add_argument("--iterations", type=int, default=2, help="PPO iterations timed on each side")
    p.add_argument("--batch-size", type=int, default=32); p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--trl-python", default=str(ROOT/".venv-trl112/bin/python"))
    a = p.parse_args()
    cfg = PPOConfig(batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, eval_prompts=0)
    policy, tok = load_gpt(a.sft); ref, _ = load_gpt(a.sft)
    reward, _ = load_reward_model(a.rm); value, _ = load_reward_model(a.rm)
    for q in [*ref.parameters(), *reward.parameters()]: q.requires_grad_(False)
    model = PolicyAndValue(policy, value.train())
    rollouts = Rollouts(model, ref, reward, tok, cfg)
    cb = RolloutCB(rollouts)
    learn = Trainer(model, rollouts, lambda m, b: ppo_step_loss(m, b, cfg), [cb], cfg.steps_per_rollout * a.iterations, cfg.lr,
                    min_lr_frac=1.0, weight_decay=0.0, dtype="fp32")
    t0 = time.perf_counter(); learn.fit(); ours = time.perf_counter() - t0
    rollout_s = sum(h.get("rollout_seconds", 0) for h in learn.history)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        end, pad = chat_token(tok, "<|im_end|>"), chat_token(tok, "<|pad|>")
        load_gpt(a.sft)[0].to_hf(eos_token_id=end, pad_token_id=pad).save_pretrained(d/"policy")
        load_reward_model(a.rm)[0].to_hf(pad_token_id=pad).save_pretrained(d/"reward")
        tok.to_hf().save_pretrained(d/"tokenizer")
        pool = rollouts.task.pool("train")
        g = torch.Generator().manual_seed(0)
        prompts = [chat_prompt(tok, pool[i].messages(with_answer=False), 256) for i in torch.randint(len(pool), (a.batch_size * a.iterations,), generator=g).tolist()]
        spec = dict(prompts=prompts, batch_size=cfg.batch_size, minibatches=cfg.minibatches, ppo_epochs=cfg.ppo_epochs, iterations=a.iterations,
                    max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, kl_coef=cfg.kl_coef, missing_end_penalty=cfg.missing_end_penalty, lr=cfg.lr)
        (d/"spec.json").write_text(json.dumps(spec))
        res = subprocess.run([a.trl_python, str(ROOT/"bench"/"trl112_ppo_speed.py"), str(d)], capture_output=True, text=True)
        if res.returncode: raise SystemExit(f"TRL 1.12 run failed:\n{res.stderr[-3000:]}")
        trl = json.loads(res.stdout.strip().splitlines()[-1])
    n = a.iterations
    print(f"PPO iteration: {cfg.batch_size} prompts, replies up to {cfg.max_new_tokens} tokens, {cfg.ppo_epochs} epochs x {cfg.minibatches} minibatches, "
          f"fp32, {torch.get_num_threads()} threads; mean over {n} iterations\n")
    print("| implementation | seconds per iteration | of which rollout | of which updates |\n|---|---|---|---|")
    print(f"| llm_nb | {ours / n:.2f} | {rollout_s / n:.2f} | {(ours - rollout_s) / n:.2f} |")
    print(f"| TRL {trl['trl']} PPOTrainer | {trl['seconds'] / n:.2f} | | |")
    print(f"\nspeed-up: {trl['seconds'] / ours:.2f}x")

if __name__ == "__main__": main()
