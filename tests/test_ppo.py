"""PPO's pieces equal TRL 1.12.0's `PPOTrainer.train()` (the last TRL with PPO) on the tensors it really saw.

`fixtures/trl112_ppo.json` holds what went in and out of one real 1.12.0 PPO iteration per scenario (k1/k3, with and
without reward whitening, a missing-EOS penalty); `fixtures/make_trl112_ppo.py` regenerates it in its own trl 1.12.0
environment. Here the recorded inputs go through llm_nb.ppo, laid out as TRL lays them (`trl_layout`), and every
intermediate tensor and every minibatch loss must match.
"""
import json
from pathlib import Path
import pytest, torch
from llm_nb.ppo import (end_index, gae, kl_penalty, penalise_unfinished, policy_loss, ppo_loss, token_rewards,
                        trl_layout, value_loss, whiten)

FIXTURES = json.loads((Path(__file__).parent/"fixtures"/"trl112_ppo.json").read_text())["fixtures"]
T_ = lambda x: torch.tensor(x)

def close(a, b, mask=None, tol=1e-5):
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if mask is not None: a, b = a * mask, b * mask
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)

@pytest.fixture(params=FIXTURES, ids=[f["scenario"]["name"] for f in FIXTURES])
def fx(request): return request.param

def rollout(f):
    "The per-token quantities of the recorded rollout, computed by llm_nb.ppo in TRL's layout"
    s, resp = f["scenario"], T_(f["postprocessed_responses"])
    policy_mask = (torch.arange(resp.size(1)) <= end_index((resp != f["pad_id"]).long())[:, None]).float()
    value_mask, score_at = trl_layout(policy_mask)
    finished = (resp == f["eos_id"]).any(-1)
    scores = penalise_unfinished(T_(f["scores"]), finished, s["missing_eos_penalty"])
    kl = kl_penalty(T_(f["logprobs"]), T_(f["ref_logprobs"]), policy_mask, s["kl_estimator"])
    rewards = token_rewards(kl, scores, score_at, s["kl_coef"])
    raw_rewards = rewards
    if s["whiten_rewards"]: rewards = whiten(rewards, value_mask, shift_mean=False)
    values = T_(f["values"]) * value_mask
    advantages, returns = gae(rewards, values, value_mask, f["gamma"], f["lam"])
    return dict(policy_mask=policy_mask, value_mask=value_mask, raw_rewards=raw_rewards, rewards=rewards, values=values,
                raw_advantages=advantages, advantages=whiten(advantages, policy_mask), returns=returns)

def test_layout_matches_trl(fx):
    "The policy mask ends at EOS; TRL's value mask and score position are one token further (when it fits)"
    r, resp = rollout(fx), T_(fx["postprocessed_responses"])
    assert ((r["value_mask"].sum(1) - r["policy_mask"].sum(1)) <= 1).all()
    ended = (resp == fx["eos_id"]).any(-1)
    assert 0 < ended.sum() < len(resp), "the fixture should hold finished and unfinished replies"

def test_rewards_and_whitening(fx):
    r = rollout(fx)
    if fx["rewards"] is None: pytest.skip("this scenario does not whiten rewards; its rewards are checked through GAE")
    close(r["raw_rewards"], fx["rewards"])
    close(r["rewards"], fx["rewards_whitened"], r["value_mask"])

def test_gae_and_advantage_whitening(fx):
    r = rollout(fx)
    close(r["raw_advantages"], fx["advantages"], tol=1e-5)
    close(r["advantages"], fx["advantages_whitened"], r["policy_mask"], tol=1e-5)

def test_losses_of_every_minibatch(fx):
    "Policy loss, value loss, their clip fractions and the total of each of TRL's optimizer steps"
    r = rollout(fx)
    old_logprobs = T_(fx["logprobs"])
    assert len(fx["updates"]) == 4
    for u in fx["updates"]:
        i = T_(u["indices"])
        pm, vm = r["policy_mask"][i], r["value_mask"][i]
        new_lp, vpred = T_(u["new_logprobs"]), T_(u["vpred"])
        pg, pg_clip = policy_loss(new_lp, old_logprobs[i], r["advantages"][i], pm, fx["cliprange"])
        vf, vf_clip = value_loss(vpred, r["values"][i], r["returns"][i], vm, fx["cliprange_value"])
        total, stats = ppo_loss(new_lp, old_logprobs[i], r["advantages"][i], pm, vpred, r["values"][i], r["returns"][i], vm,
                                fx["cliprange"], fx["cliprange_value"], fx["vf_coef"])
        close(pg, u["pg_loss"]); close(pg_clip, u["pg_clipfrac"]); close(vf, u["vf_loss"]); close(vf_clip, u["vf_clipfrac"])
        close(total, u["loss"])
        assert stats["pg_loss"] == pytest.approx(pg.item())
    assert any(u["pg_clipfrac"] > 0 for f in FIXTURES for u in f["updates"]), "some step should clip, else clipping is untested"

@pytest.mark.skipif(not (Path(__file__).parents[1]/".venv-trl112/bin/python").exists(), reason="no .venv-trl112 (see fixtures/make_trl112_ppo.py)")
def test_whiten_and_masked_stats_equal_trl112_helpers(tmp_path):
    "TRL 1.12's own masked_whiten on random tensors, run in its environment, equals `whiten`"
    import subprocess, sys
    g = torch.Generator().manual_seed(0)
    x, mask = torch.randn(5, 9, generator=g), (torch.rand(5, 9, generator=g) > 0.3).float()
    (tmp_path/"in.json").write_text(json.dumps(dict(x=x.tolist(), mask=mask.tolist())))
    code = ("import json, torch; from trl.experimental.ppo.ppo_trainer import masked_whiten; d = json.load(open('in.json')); "
            "x, m = torch.tensor(d['x']), torch.tensor(d['mask']).bool(); "
            "print(json.dumps([masked_whiten(x, m).tolist(), masked_whiten(x, m, shift_mean=False).tolist()]))")
    out = subprocess.run([str(Path(__file__).parents[1]/".venv-trl112/bin/python"), "-c", code], cwd=tmp_path,
                         capture_output=True, text=True, env={"TRL_EXPERIMENTAL_SILENCE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    shifted, kept = json.loads(out.stdout.strip().splitlines()[-1])
    close(whiten(x, mask), shifted, mask); close(whiten(x, mask, shift_mean=False), kept, mask)
