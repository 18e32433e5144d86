"""DPO and GRPO speed: llm_nb's stages against TRL 1.16's DPOTrainer and GRPOTrainer, same model, data, batch and lengths.

Both run in this one invocation, one after the other, on the same SFT model (TRL's through `to_hf()`: a
`GPT2LMHeadModel`, or a `GPTNeoXForCausalLM` for a rotary model such as the `cpu` preset's, and the tokenizer with
its ChatML template, so both see the same token ids):

- DPO: the same preference pairs (sampled from the SFT model, ranked by the verse task's gold scorer, as `llm_nb_dpo`
  does), the same pairs per step, β, loss and learning rate. llm_nb computes the reference log-probs once before
  training; so does TRL with `precompute_ref_log_probs=True` (the like-for-like peer); TRL's default runs the
  reference model at every step (a second row). The one-off reference pass is counted in the setup column.
- GRPO: the same training prompts, G replies per prompt, reply budget (the task's), temperature, loss (`dapo`, β = 0),
  one optimizer step per generation. Each step is a whole iteration: sampling the replies, scoring them, the update.

A step's time is the wall time between the ends of consecutive optimizer steps (data, forward, backward, optimizer;
generation too for GRPO); the first `--warmup` steps are left out. DPO's tokens/s counts the tokens of the step's
sequences (prompt and reply, chosen and rejected, without padding); GRPO's counts the reply tokens sampled. Setup is
what comes before the first step: tokenizing the pairs and the reference pass (DPO). Prints one table per method
and precision, with llm_nb's speed-up over each peer.

    python bench/bench_alignment_speed.py --sft runs/sft
"""
import argparse, statistics, tempfile, time, warnings
from pathlib import Path
import torch
from llm_nb.runs import load_gpt
from llm_nb.chat import chat_token
from llm_nb.tasks import get_task
from llm_nb.train import Trainer, Callback
from llm_nb.dpo import sample_pairs, encode_pairs, reference_logps, PairBatches, DPOLoss
from llm_nb.grpo import GroupBatches, GRPOLoss

class StepClock(Callback):
    "Wall time at the end of every optimizer step"
    order = 100
    def __init__(self): self.ends = []
    def before_fit(self, learn): self.ends = [time.perf_counter()]
    def after_step(self, learn): self.ends.append(time.perf_counter())

def trl_clock():
    "A transformers TrainerCallback recording the wall time at the end of every optimizer step, and the logs"
    from transformers import TrainerCallback
    class Clock(TrainerCallback):
        def __init__(self): self.ends, self.logs = [], []
        def on_train_begin(self, args, state, control, **kw): self.ends = [time.perf_counter()]
        def on_step_end(self, args, state, control, **kw): self.ends.append(time.perf_counter())
        def on_log(self, args, state, control, logs=None, **kw): self.logs.append(logs or {})
    return Clock()

def step_seconds(ends:list, warmup:int) -> float:
    "Median seconds per step after the first `warmup` steps"
    return statistics.median(b - a for a, b in zip(ends[warmup:], ends[warmup + 1:]))

def hf_models(sft, tok):
    "A fresh TRL-side copy of the SFT model and its tokenizer (TRL patches the model it trains)"
    end, pad = chat_token(tok, "<|im_end|>"), chat_token(tok, "<|pad|>")
    return load_gpt(sft)[0].to_hf(eos_token_id=end, pad_token_id=pad), tok.to_hf()

def trl_args(config, out, dtype, logging_steps=10**6, **kw):
    "A TRL config for this CPU: the given precision (TRL defaults to bf16), no checkpoints, no warmup, logs only to callbacks"
    return config(output_dir=str(out), bf16=dtype == "bf16", use_cpu=True, report_to=[], save_strategy="no", logging_steps=logging_steps,
                  gradient_checkpointing=False, lr_scheduler_type="constant", disable_tqdm=True, dataloader_num_workers=0, **kw)

def quiet(trainer):
    "The trainer without the callback that prints its logs (tqdm is off)"
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)
    return trainer

def bench_dpo(sft, a, dtype, tmp):
    "Rows of the DPO table at one precision: llm_nb, TRL with precomputed reference log-probs, TRL's default"
    import trl
    from datasets import Dataset
    model, tok = load_gpt(sft)
    pad, steps = chat_token(tok, "<|pad|>"), a.warmup + a.steps
    pairs = sample_pairs(model.eval(), tok, "verse", a.dpo_prompts, 4, "train", 0.7, seed=0)
    t0 = time.perf_counter()
    encoded = encode_pairs(tok, pairs, model.config.block_size)
    ref = reference_logps(load_gpt(sft)[0], encoded, pad, dtype)
    setup = time.perf_counter() - t0
    tokens_per_pair = sum(len(c) + len(r) for c, _, r, _ in encoded) / len(encoded)
    clock, loss = StepClock(), DPOLoss(0.1, "sigmoid")
    Trainer(model, PairBatches(encoded, ref, a.dpo_batch, pad), loss, [loss, clock], steps, 5e-5, 0, 1.0, 0.0, dtype=dtype).fit()
    s = step_seconds(clock.ends, a.warmup)
    rows = [("llm_nb", s, a.dpo_batch * tokens_per_pair / s, setup)]
    data = Dataset.from_list([dict(prompt=p["prompt"], chosen=p["chosen"], rejected=p["rejected"]) for p in pairs])
    for precompute in (True, False):
        hf, hf_tok = hf_models(sft, tok)
        ref_hf = None if precompute else hf_models(sft, tok)[0]
        args = trl_args(trl.DPOConfig, tmp/f"dpo{precompute}", dtype, per_device_train_batch_size=a.dpo_batch, max_steps=steps,
                        learning_rate=5e-5, beta=0.1, loss_type=["sigmoid"], max_length=model.config.block_size, warmup_steps=0,
                        precompute_ref_log_probs=precompute, precompute_ref_batch_size=64, max_grad_norm=1.0, weight_decay=0.0)
        c, t0 = trl_clock(), time.perf_counter()
        trainer = quiet(trl.DPOTrainer(model=hf, ref_model=ref_hf, args=args, train_dataset=data, processing_class=hf_tok, callbacks=[c]))
        trainer.train()
        s, total = step_seconds(c.ends, a.warmup), time.perf_counter() - t0
        rows.append((f"TRL {trl.__version__} DPOTrainer" + (", precompute_ref_log_probs" if precompute else " (reference every step)"),
                     s, a.dpo_batch * tokens_per_pair / s, total - (c.ends[-1] - c.ends[0])))   # setup: all but the steps
    return rows, len(encoded), tokens_per_pair

def bench_grpo(sft, a, task, dtype, tmp):
    "Rows of the GRPO table for one task at one precision: llm_nb and TRL's GRPOTrainer"
    import trl
    from datasets import Dataset
    model, tok = load_gpt(sft)
    steps, G, t = a.warmup + a.steps, a.num_generations, get_task(task)
    clock = StepClock()
    batches = GroupBatches(model, tok, task, a.grpo_prompts, G, 1.0)
    loss = GRPOLoss(0.0, 0.2, 0.28, "dapo", t.max_new_tokens, 1.0)
    learn = Trainer(model, batches, loss, [batches, loss, clock], steps, 5e-5, 0, 1.0, 0.0, dtype=dtype).fit()
    s = step_seconds(clock.ends, a.warmup)
    lens = [h["completion_len"] for h in learn.history[a.warmup:]]
    rows = [("llm_nb", s, a.grpo_prompts * G * statistics.mean(lens) / s, statistics.mean(lens))]
    hf, hf_tok = hf_models(sft, tok)
    examples = t.examples("train", a.grpo_prompts * steps, 0)
    data = Dataset.from_list([dict(prompt=e.messages(with_answer=False)) for e in examples])
    def reward(prompts, completions, **kw): return [t.score(p[-1]["content"], c[0]["content"]) for p, c in zip(prompts, completions)]
    args = trl_args(trl.GRPOConfig, tmp/f"grpo{task}", dtype, logging_steps=1, per_device_train_batch_size=a.grpo_prompts * G, num_generations=G,
                    max_completion_length=t.max_new_tokens, temperature=1.0, beta=0.0, loss_type="dapo", epsilon=0.2, epsilon_high=0.28,
                    learning_rate=5e-5, max_steps=steps, warmup_steps=0, max_grad_norm=1.0, weight_decay=0.0)
    c = trl_clock()
    trainer = quiet(trl.GRPOTrainer(model=hf, reward_funcs=reward, args=args, train_dataset=data, processing_class=hf_tok, callbacks=[c]))
    trainer.train()
    s = step_seconds(c.ends, a.warmup)
    trl_len = statistics.mean(float(l["completions/mean_length"]) for l in c.logs[a.warmup:] if "completions/mean_length" in l)
    rows.append((f"TRL {trl.__version__} GRPOTrainer", s, a.grpo_prompts * G * trl_len / s, trl_len))
    return rows

def table(title, header, rows, fmt):
    print(f"\n{title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows: print("| " + " | ".join(fmt(r)) + " |")

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", required=True, help="the SFT run both sides start from")
    p.add_argument("--steps", type=int, default=8, help="timed optimizer steps on each side")
    p.add_argument("--warmup", type=int, default=2, help="steps run first and left out of the timing")
    p.add_argument("--dtypes", default="fp32,bf16", help="precisions, comma-separated (both sides use each)")
    p.add_argument("--dpo-prompts", type=int, default=256, help="prompts sampled for the DPO pairs")
    p.add_argument("--dpo-batch", type=int, default=32, help="pairs per DPO step")
    p.add_argument("--grpo-tasks", default="verse,arithmetic", help="GRPO reward tasks, comma-separated")
    p.add_argument("--grpo-prompts", type=int, default=16, help="prompts per GRPO step")
    p.add_argument("--num-generations", type=int, default=8, help="G, replies per prompt")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    import datasets, transformers
    datasets.disable_progress_bars(); transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    dtypes, tasks = a.dtypes.split(","), a.grpo_tasks.split(",")
    print(f"SFT model {a.sft}; {torch.get_num_threads()} torch threads; median step time over {a.steps} steps after {a.warmup} warm-up steps")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for dtype in dtypes:
            rows, n, tpp = bench_dpo(a.sft, a, dtype, tmp)
            ours = rows[0][1]
            table(f"DPO, {dtype}: {a.dpo_batch} pairs per step (sigmoid, β = 0.1) from {n} pairs of {tpp:.0f} tokens (chosen + rejected) on average",
                  ["implementation", "s / step", "steps / s", "tokens / s", "llm_nb speed-up", "setup before the first step, s"], rows,
                  lambda r: [r[0], f"{r[1]:.3f}", f"{1 / r[1]:.2f}", f"{r[2]:,.0f}", f"{r[1] / ours:.2f}x", f"{r[3]:.1f}"])
        for task in tasks:
            for dtype in dtypes:
                rows = bench_grpo(a.sft, a, task, dtype, tmp)
                ours = rows[0][1]
                table(f"GRPO on {task}, {dtype}: {a.grpo_prompts} prompts x G = {a.num_generations} replies of up to {get_task(task).max_new_tokens} tokens per step (dapo, β = 0)",
                      ["implementation", "s / step", "steps / s", "generated tokens / s", "llm_nb speed-up", "mean reply tokens"], rows,
                      lambda r: [r[0], f"{r[1]:.3f}", f"{1 / r[1]:.2f}", f"{r[2]:,.0f}", f"{r[1] / ours:.2f}x", f"{r[3]:.1f}"])

if __name__ == "__main__": main()
