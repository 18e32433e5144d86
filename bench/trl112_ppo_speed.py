"""TRL 1.12.0's PPOTrainer (the last TRL with PPO) timed on models exported by bench_ppo_speed.py; run in .venv-trl112.

    .venv-trl112/bin/python bench/trl112_ppo_speed.py FOLDER     # FOLDER: what bench_ppo_speed.py wrote; prints one JSON line
"""
import json, os, sys, tempfile, time, warnings
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1"); warnings.filterwarnings("ignore")
from pathlib import Path
import torch, trl
from datasets import Dataset
from transformers import AutoTokenizer, AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback
from trl.experimental.ppo import PPOConfig, PPOTrainer

class IterationClock(TrainerCallback):
    "The time at the end of each PPO iteration (TRL 1.12 calls on_step_end once per rollout batch)"
    def __init__(self): self.ends = []
    def on_step_end(self, args, state, control, **kwargs): self.ends.append(time.perf_counter())

d = Path(sys.argv[1])
spec = json.loads((d/"spec.json").read_text())
tok = AutoTokenizer.from_pretrained(d/"tokenizer"); tok.padding_side = "left"
policy, ref = AutoModelForCausalLM.from_pretrained(d/"policy"), AutoModelForCausalLM.from_pretrained(d/"policy")   # GPT-2, or GPT-NeoX for rotary models
value, reward = AutoModelForSequenceClassification.from_pretrained(d/"reward"), AutoModelForSequenceClassification.from_pretrained(d/"reward")
data = Dataset.from_dict(dict(input_ids=spec["prompts"]))
B, M = spec["batch_size"], spec["minibatches"]
with tempfile.TemporaryDirectory() as out:
    args = PPOConfig(output_dir=out, per_device_train_batch_size=B // M, gradient_accumulation_steps=1, num_mini_batches=M,
                     num_ppo_epochs=spec["ppo_epochs"], total_episodes=B * spec["iterations"], response_length=spec["max_new_tokens"],
                     stop_token="eos", temperature=spec["temperature"], kl_coef=spec["kl_coef"], missing_eos_penalty=spec["missing_end_penalty"],
                     learning_rate=spec["lr"], bf16=spec["bf16"], use_cpu=True, report_to=[], num_sample_generations=0, local_rollout_forward_batch_size=B,
                     save_strategy="no", seed=0, logging_steps=1000, disable_tqdm=True)
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward, value_model=value,
                         train_dataset=data, eval_dataset=data, callbacks=[clock := IterationClock()])
    t0 = time.perf_counter(); trainer.train()
iteration_seconds = [b - a for a, b in zip([t0] + clock.ends, clock.ends)]
print(json.dumps(dict(trl=trl.__version__, iteration_seconds=iteration_seconds, threads=torch.get_num_threads())))
