"""The reward-model and PPO stages end to end on a tiny model: run folders, exact resume (PPO stopped in the middle
of a rollout's minibatches), real preference data from a local jsonl (conversational or plain)."""
import json
from pathlib import Path
import pytest, torch
from llm_nb.model import GPT, GPTConfig
from llm_nb.tokenizer import BPETokenizer
from llm_nb.tasks import training_documents
from llm_nb.train import Trainer, Callback, CancelFitException, save_checkpoint
from llm_nb.reward import RMConfig, train_reward_model, load_reward_model, load_preferences
from llm_nb.ppo import PPOConfig, ppo
from llm_nb.runs import load_gpt
from llm_nb.runs import UsageError

@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    "A run folder holding a tiny random chat model and a small BPE tokenizer (the SFT stage's shape)"
    d = tmp_path_factory.mktemp("rlhf")
    tok = BPETokenizer.train([doc.text[:20_000] for doc in training_documents()[:3]], vocab_size=400)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=32))
    tok_file = tok.save(d/"tokenizer.json")
    save_checkpoint(Trainer(model, batches=None), d/"sft"/"checkpoint", [tok_file])
    return d

class StopAt(Callback):
    order = 1000
    def __init__(self, step): self.step = step
    def after_step(self, learn):
        if learn.step == self.step: raise CancelFitException

RM = RMConfig(prompts=6, k=3, heldout_prompts=3, batch_size=4, max_steps=4, ckpt_every=100, dtype="fp32")
PPO = PPOConfig(batch_size=4, minibatches=2, ppo_epochs=2, max_new_tokens=6, max_steps=6, ckpt_every=100, eval_prompts=0)

def weights(model): return {k: v.clone() for k, v in model.state_dict().items()}

def test_reward_model_stage_resumes_exactly(sft_run):
    d = sft_run
    rec = train_reward_model(RM, d/"sft", d/"rm", time_budget=None, verbose=False)
    assert rec["step"] == 4 and 0 <= rec["heldout_acc"] <= 1 and rec["heldout_n"] > 0
    assert {"run.json", "metrics.jsonl", "pairs.jsonl", "heldout.jsonl", "loss.png"} <= {p.name for p in (d/"rm").iterdir()}
    train_reward_model(RM, d/"sft", d/"rm2", time_budget=None, verbose=False, cbs=[StopAt(2)])
    train_reward_model(out=d/"rm2", resume=True, verbose=False)
    a, b = weights(load_reward_model(d/"rm")[0]), weights(load_reward_model(d/"rm2")[0])
    for k in a: torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    with pytest.raises(UsageError, match="already holds a run"): train_reward_model(RM, d/"sft", d/"rm", verbose=False)

def test_ppo_stage_resumes_exactly_mid_rollout(sft_run):
    d = sft_run
    if not (d/"rm").exists(): train_reward_model(RM, d/"sft", d/"rm", time_budget=None, verbose=False)
    ppo(PPO, d/"sft", d/"rm", d/"ppo", time_budget=None, verbose=False)
    ppo(PPO, d/"sft", d/"rm", d/"ppo2", time_budget=None, verbose=False, cbs=[StopAt(3)])   # 4 steps per rollout: mid-rollout
    ppo(out=d/"ppo2", resume=True, verbose=False)
    a, b = weights(load_gpt(d/"ppo")[0]), weights(load_gpt(d/"ppo2")[0])
    for k in a: torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    logs = [json.loads(l) for l in (d/"ppo"/"metrics.jsonl").read_text().splitlines()]
    assert [r["rollout"] for r in logs if "rollout" in r] == [0, 1]
    with pytest.raises(UsageError, match="holds no reward model"): load_reward_model(d/"sft")

def test_rm_and_ppo_start_from_a_transformers_folder(sft_run, tmp_path):
    "Like every post-training stage, the reward model and PPO start from a `save_pretrained` folder too (`load_base`)"
    from llm_nb.chat import save_hf
    model, tok = load_gpt(sft_run/"sft")
    hf = save_hf(model, tok, tmp_path/"hf")
    rec = train_reward_model(RM, hf, tmp_path/"rm", time_budget=None, verbose=False)
    assert rec["step"] == 4
    ppo(PPO, hf, tmp_path/"rm", tmp_path/"ppo", time_budget=None, verbose=False)
    policy, _ = load_gpt(tmp_path/"ppo")
    assert policy.config.n_embd == model.config.n_embd

def test_load_preferences_local_jsonl(tmp_path):
    conv = dict(prompt=[dict(role="user", content="Say hi.")], chosen=[dict(role="assistant", content="Hi!")],
                rejected=[dict(role="assistant", content="No.")])
    (tmp_path/"conv.jsonl").write_text(json.dumps(conv) + "\n")
    (tmp_path/"plain.jsonl").write_text(json.dumps(dict(prompt="Say hi.", chosen="Hi!", rejected="No.")) + "\n")
    assert load_preferences(str(tmp_path/"conv.jsonl")) == load_preferences(str(tmp_path/"plain.jsonl")) == [conv]
    (tmp_path/"bad.jsonl").write_text(json.dumps(dict(prompt="x", chosen="y")) + "\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['rejected'\]"): load_preferences(str(tmp_path/"bad.jsonl"))
    (tmp_path/"empty_reply.jsonl").write_text(json.dumps(dict(prompt="x", chosen="y", rejected=" ")) + "\n")
    with pytest.raises(ValueError, match="row 0"): load_preferences(str(tmp_path/"empty_reply.jsonl"))
    with pytest.raises(FileNotFoundError): load_preferences(str(tmp_path/"missing.jsonl"))
