"""PPO speed: one PPO iteration (rollout + updates) of llm_nb against TRL 1.12.0's PPOTrainer, same models and sizes.

Both run in the same invocation, one after the other: ours here, TRL's in its own environment (`.venv-trl112`, see
tests/fixtures/make_trl112_ppo.py; TRL removed PPO in 1.13) on our weights exported through `to_hf()`: the SFT policy
and reference as `GPT2LMHeadModel`, the reward and value models as `GPT2ForSequenceClassification` (GPT-NeoX's
`GPTNeoXForCausalLM` and `GPTNeoXForSequenceClassification` for rotary models, such as the `cpu` preset's), the
tokenizer with its ChatML template. Same prompts, batch, reply budget, epochs and minibatches, sampling at temperature 1.
Ours runs in `--dtype` (default `PPOConfig.dtype` as `resolve_dtype` makes it on this machine: bf16 autocast of the
rollouts and the updates where the CPU has bf16 kernels, fp32 elsewhere; the weights in fp32); TRL
in bf16 (`bf16=True`: accelerate's autocast of the policy and value model it prepares; its reference and reward
model stay fp32) and in fp32.
Each side runs `--warmup` + `--iterations` iterations and is timed per iteration; the first `--warmup` (each side's
one-off costs: allocator, first kernels, TRL's set-up) are left out and the median of the rest is kept. TRL runs in
both precisions (its bf16 is not always its faster one), and `--rounds` rounds alternate the sides, so that a burst of
load on a shared machine shows as one odd round instead of one odd side; the speed-ups reported are the medians over
rounds of each round's ratio, with their range.

    python bench/bench_ppo_speed.py --sft runs/sft --rm runs/rm --rounds 3
"""
import argparse, json, os, statistics, subprocess, tempfile, time
from pathlib import Path
import torch
from llm_nb.runs import load_gpt, resolve_dtype
from llm_nb.chat import chat_prompt, chat_token
from llm_nb.reward import load_reward_model
from llm_nb.ppo import PPOConfig, PolicyAndValue, Rollouts, RolloutCB, ppo_step_loss
from llm_nb.tasks import get_task
from llm_nb.train import Trainer, Callback

ROOT = Path(__file__).resolve().parents[1]

def ours(a, cfg):
    "Our PPO iterations from fresh copies of the models: (seconds per iteration, seconds of its rollout), warm-up left out"
    policy, tok = load_gpt(a.sft); ref, _ = load_gpt(a.sft)
    reward, _ = load_reward_model(a.rm); value, _ = load_reward_model(a.rm)
    for q in [*ref.parameters(), *reward.parameters()]: q.requires_grad_(False)
    model = PolicyAndValue(policy, value.train())
    rollouts = Rollouts(model, ref, reward, tok, cfg)
    class IterationClock(Callback):
        "The time at the end of each PPO iteration (its last optimizer step)"
        def __init__(self): self.ends = []
        def before_fit(self, learn): self.start = time.perf_counter()
        def after_step(self, learn):
            if learn.step % cfg.steps_per_rollout == 0: self.ends.append(time.perf_counter())
    clock = IterationClock()
    learn = Trainer(model, rollouts, lambda m, b: ppo_step_loss(m, b, cfg), [RolloutCB(rollouts), clock], cfg.steps_per_rollout * (a.warmup + a.iterations),
                    cfg.lr, min_lr_frac=1.0, weight_decay=0.0, dtype=cfg.dtype)
    learn.fit()
    seconds = [b - e for e, b in zip([clock.start] + clock.ends, clock.ends)][a.warmup:]
    return seconds, [h["rollout_seconds"] for h in learn.history if "rollout_seconds" in h][a.warmup:]

def export(a, cfg, d:Path):
    "Our SFT and reward models through `to_hf()`, the tokenizer and the prompts, into `d` for trl112_ppo_speed.py"
    policy, tok = load_gpt(a.sft)
    end, pad = chat_token(tok, "<|im_end|>"), chat_token(tok, "<|pad|>")
    policy.to_hf(eos_token_id=end, pad_token_id=pad).save_pretrained(d/"policy")
    load_reward_model(a.rm)[0].to_hf(pad_token_id=pad).save_pretrained(d/"reward")
    tok.to_hf().save_pretrained(d/"tokenizer")
    pool = get_task(cfg.task).pool("train")
    n = a.warmup + a.iterations
    g = torch.Generator().manual_seed(0)
    prompts = [chat_prompt(tok, pool[i].messages(with_answer=False), 256) for i in torch.randint(len(pool), (a.batch_size * n,), generator=g).tolist()]
    return dict(prompts=prompts, batch_size=cfg.batch_size, minibatches=cfg.minibatches, ppo_epochs=cfg.ppo_epochs, iterations=n,
                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, kl_coef=cfg.kl_coef, missing_end_penalty=cfg.missing_end_penalty, lr=cfg.lr)

def theirs(a, spec, d:Path, dtype:str) -> tuple[str, list[float]]:
    "TRL's version, and TRL 1.12's seconds per iteration with its updates in `dtype`, warm-up left out"
    (d/"spec.json").write_text(json.dumps(dict(spec, bf16=dtype == "bf16")))
    res = subprocess.run([a.trl_python, str(ROOT/"bench"/"trl112_ppo_speed.py"), str(d)], capture_output=True, text=True)
    if res.returncode: raise SystemExit(f"TRL 1.12 run failed:\n{res.stderr[-3000:]}")
    trl = json.loads(res.stdout.strip().splitlines()[-1])
    return trl["trl"], trl["iteration_seconds"][a.warmup:]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True); p.add_argument("--rm", required=True)
    p.add_argument("--warmup", type=int, default=2, help="PPO iterations run first and not timed, on each side")
    p.add_argument("--iterations", type=int, default=6, help="PPO iterations timed on each side (their median is kept)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (ours, TRL bf16, TRL fp32)")
    p.add_argument("--batch-size", type=int, default=32); p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default=resolve_dtype(PPOConfig.dtype, "cpu"),
                   help="precision of our rollouts and updates (default: PPOConfig's, as this machine resolves it)")
    p.add_argument("--trl-python", default=str(ROOT/".venv-trl112/bin/python"))
    a = p.parse_args()
    cfg = PPOConfig(batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, eval_prompts=0, dtype=a.dtype)
    med = statistics.median
    rows = []
    with tempfile.TemporaryDirectory() as d:
        spec = export(a, cfg, Path(d))
        for r in range(a.rounds):
            seconds, rollout = ours(a, cfg)
            version, trl_bf16 = theirs(a, spec, Path(d), "bf16")
            _, trl_fp32 = theirs(a, spec, Path(d), "fp32")
            rows.append((med(seconds), med(rollout), med(trl_bf16), med(trl_fp32)))
            print(f"round {r + 1}: llm_nb {rows[-1][0]:.2f} s, TRL bf16 {rows[-1][2]:.2f} s, TRL fp32 {rows[-1][3]:.2f} s", flush=True)
    print(f"\nPPO iteration: {cfg.batch_size} prompts, replies up to {cfg.max_new_tokens} tokens, {cfg.ppo_epochs} epochs x {cfg.minibatches} minibatches, "
          f"llm_nb in {cfg.dtype} (rollouts and updates), {torch.get_num_threads()} threads; each cell the median over {a.iterations} iterations "
          f"after {a.warmup} warm-up\n")
    print(f"| round | llm_nb s | of which rollout | of which updates | TRL {version} bf16 s | TRL {version} fp32 s | vs TRL bf16 | vs TRL fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for i, (o, ro, tb, tf) in enumerate(rows):
        print(f"| {i + 1} | {o:.2f} | {ro:.2f} | {o - ro:.2f} | {tb:.2f} | {tf:.2f} | {tb / o:.2f}x | {tf / o:.2f}x |")
    for name, j in (("bf16", 2), ("fp32", 3)):
        ratios = [row[j] / row[0] for row in rows]
        print(f"\nspeed-up over TRL {name}: {med(ratios):.2f}x (rounds: {min(ratios):.2f}x to {max(ratios):.2f}x)", end="")
    best = [min(row[2], row[3]) / row[0] for row in rows]
    print(f"\nspeed-up over TRL's faster precision in each round: {med(best):.2f}x (rounds: {min(best):.2f}x to {max(best):.2f}x)")

if __name__ == "__main__": main()
