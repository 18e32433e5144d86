"""`reward_loss` and `RewardModel` equal TRL's `RewardTrainer`: its loss on the same tensors (margin x centring), and a real
training step on the same weights through `RewardModel.to_hf()` (loss and every gradient, fp32)."""
import math, types
import pytest, torch
from llm_nb.model import get_config
from llm_nb.reward import RewardModel, reward_loss

trl = pytest.importorskip("trl")
from trl import RewardConfig, RewardTrainer

class Scores(torch.nn.Module):
    "A stand-in model whose logits are given rewards (chosen first, then rejected), as RewardTrainer expects"
    def __init__(self, rewards): super().__init__(); self.rewards = rewards
    def forward(self, **inputs): return types.SimpleNamespace(logits=self.rewards[:, None])

def trl_loss(r_c, r_r, margin, center_coef):
    "RewardTrainer.compute_loss run on a trainer-shaped object (only the attributes compute_loss reads)"
    me = types.SimpleNamespace(model=torch.nn.Identity().train(), args=types.SimpleNamespace(center_rewards_coefficient=center_coef),
                               accelerator=types.SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x),
                               _metrics=dict(train=__import__("collections").defaultdict(list)), _total_train_tokens=0, _tp_size=1)
    inputs = dict(input_ids=None, attention_mask=torch.ones(2 * len(r_c), 3))
    if margin is not None: inputs["margin"] = margin
    loss = RewardTrainer.compute_loss(me, Scores(torch.cat([r_c, r_r])), inputs)
    return loss, me._metrics["train"]["accuracy"][-1]

@pytest.mark.parametrize("margin", [False, True])
@pytest.mark.parametrize("center_coef", [None, 0.01, 0.5])
def test_loss_equals_trl(margin, center_coef):
    g = torch.Generator().manual_seed(1)
    r_c, r_r = torch.randn(16, generator=g) * 2, torch.randn(16, generator=g) * 2
    r_r[3] = r_c[3]                                                          # a tie: wrong for both
    m = torch.rand(16, generator=g) if margin else None
    loss, acc = reward_loss(r_c, r_r, m, center_coef)
    ref_loss, ref_acc = trl_loss(r_c, r_r, m, center_coef)
    torch.testing.assert_close(loss, ref_loss, atol=1e-7, rtol=1e-6)
    assert acc.item() == pytest.approx(ref_acc)

def test_real_reward_trainer_step_same_loss_and_gradients(tmp_path):
    "A RewardTrainer training step on `to_hf()` of our reward model: same loss and gradients as `reward_loss` on ours"
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    V, PAD = 40, 0
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({f"t{i}": i for i in range(V)}, unk_token="t1")),
                                  pad_token="t0", eos_token="t1")
    torch.manual_seed(0)
    rm = RewardModel(get_config("tiny", vocab_size=V, block_size=32, tie_weights=False))
    g = torch.Generator().manual_seed(0)
    seqs = lambda: [torch.randint(2, V, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist() + [1] for _ in range(6)]
    chosen, rejected = seqs(), seqs()
    hf = rm.to_hf(pad_token_id=PAD).train()
    args = RewardConfig(output_dir=str(tmp_path), per_device_train_batch_size=6, bf16=False, report_to=[], learning_rate=0.0,
                        center_rewards_coefficient=0.05, max_length=None, disable_dropout=True, logging_steps=1, save_strategy="no")
    trainer = RewardTrainer(model=hf, args=args, processing_class=tok,
                            train_dataset=Dataset.from_dict(dict(chosen_ids=chosen, rejected_ids=rejected)))
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.current_gradient_accumulation_steps = 1          # what Trainer's loop sets before it calls training_step
    trl_loss_value = trainer.training_step(trainer.model, batch).item()
    hf_grads = {n: p.grad for n, p in trainer.model.named_parameters()}

    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert (ids[mask == 0] == PAD).all() and mask[:, 0].all(), "RewardTrainer pads on the right"
    rm.train()
    r = rm(ids, mask)
    loss, _ = reward_loss(*r.chunk(2), center_coef=0.05)
    loss.backward()
    assert loss.item() == pytest.approx(trl_loss_value, abs=1e-6)
    ours = {n: p.grad for n, p in rm.named_parameters()}
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    assert set(hf_grads) == set(ours) - {"lm_head.weight"}
    for n, gr in hf_grads.items():
        mine = ours[n].t() if n.endswith(conv1d) else ours[n]
        torch.testing.assert_close(gr, mine, atol=1e-6, rtol=1e-5, msg=lambda m: f"{n}: {m}")
    assert ours["lm_head.weight"] is None                                  # the LM head plays no part in a reward
