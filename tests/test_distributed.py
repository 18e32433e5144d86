"""Chapter 08 under real processes (torchrun --standalone, gloo on CPU): every strategy equal to one process, memory
against the planner, sharded checkpoints resumed at other world sizes and layouts, the consolidated export read by
`load_gpt`, `llm_nb_train --parallel`, and a SIGKILLed rank under `torchrun --max-restarts 1`.

Launches are grouped (each costs ~10 s on two cores): one of 2 processes, one of 4, two CLI runs.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file, load_model
from llm_nb.distributed import torchrun, resume_check, byte_tokens, SMALL
from llm_nb.model import GPT, GPTConfig
from llm_nb.plan import plan
from llm_nb.runs import read_json, load_gpt
from llm_nb.train import Trainer, RandomWindows
from test_train import ROOT, TRAIN, env, corpus   # the llm_nb_train launcher, the session's environment and corpus

TWO = ["dp=2", "dp=2,zero1=True", "fsdp=2", "fsdp=2,reshard=False", "fsdp=2,offload=True", "fsdp=2,ac=full",
       "tp=2", "tp=2,ac=selective", "pp=2,schedule=gpipe", "pp=2", "pp=2,schedule=interleaved"]
FOUR = ["fsdp=2,tp=2", "dp=2,fsdp=2", "pp=2,fsdp=2", "pp=2,tp=2"]
MODERN = dict(n_kv_head=2, pos="rope", norm="rmsnorm", mlp="swiglu", bias=False)   # GQA, RoPE, RMSNorm, SwiGLU
SPEEDRUN = dict(tie_weights=False, pos="rope")     # chapter 07a's model, trained with its Muon + AdamW
MUON_TWO, MUON_FOUR = ["dp=2", "dp=2,zero1=True", "fsdp=2", "tp=2", "pp=2"], ["fsdp=2,tp=2", "pp=2,fsdp=2"]
MEMORY = dict(n_layer=4, n_embd=256, seq_len=256, micro_batch=8)

def equal(rows, grads=1e-6, loss=1e-4):
    for r in rows: assert r["grads"] < grads and r["loss"] < loss, r

@pytest.fixture(scope="module")
def two(tmp_path_factory):
    "One launch of 2 processes: the strategies, accumulation, a modern block, mixed precision, memory, two checkpoints"
    d = tmp_path_factory.mktemp("two")
    code = f"""
from dataclasses import replace
from llm_nb.distributed import check_parallel, memory_check, resume_check, SMALL
check_parallel({TWO!r}, out={str(d/'plain.json')!r})
check_parallel(['fsdp=2', 'dp=2'], out={str(d/'accum.json')!r}, accum=2)
check_parallel(['tp=2', 'pp=2', 'fsdp=2,tp=1'], out={str(d/'modern.json')!r}, cfg={MODERN!r})
check_parallel(['fsdp=2,param_dtype=bf16'], out={str(d/'bf16.json')!r}, dtype='bf16')
memory_check(['fsdp=2', 'tp=2'], out={str(d/'memory.json')!r}, **{MEMORY!r})
resume_check('fsdp=2', {str(d/'ck_fsdp')!r}, True, {str(d/'straight_fsdp.json')!r})
resume_check('tp=2', {str(d/'ck_tp')!r}, True, {str(d/'straight_tp.json')!r})
check_parallel({MUON_TWO!r}, out={str(d/'muon.json')!r}, cfg={SPEEDRUN!r}, optimizer='muon')
speedrun = replace(SMALL, **{SPEEDRUN!r})
resume_check('fsdp=2', {str(d/'ck_muon')!r}, True, {str(d/'straight_muon.json')!r}, cfg=speedrun, optimizer='muon')
resume_check('tp=2', {str(d/'ck_muon')!r}, False, {str(d/'muon_fsdp_to_tp.json')!r}, cfg=speedrun, optimizer='muon')
"""
    t = time.time()
    torchrun(code, nproc=2, timeout=600)
    print(f"2-process launch: {time.time() - t:.0f}s")
    return d

def test_two_processes_equal_one(two):
    equal(read_json(two/"plain.json"))
    equal(read_json(two/"accum.json"))                  # gradient accumulation without a sync per micro-batch
    equal(read_json(two/"modern.json"))                 # GQA + RoPE + RMSNorm + SwiGLU: head-aligned TP, pipeline, FSDP
    equal(read_json(two/"bf16.json"), grads=5e-2, loss=2e-2)   # bf16 parameters vs fp32 ones under bf16 autocast: close, not equal

def test_muon_equals_one_process(two, four):
    "Chapter 07a's Muon under DDP, ZeRO-1, FSDP, TP, PP and 2-D meshes: each sharded matrix orthogonalised whole, as in one process"
    rows = read_json(two/"muon.json") + read_json(four/"muon.json")
    equal(rows)                         # Newton-Schulz (bf16 where the machine has it) turns 1e-8 gradient differences into ~5e-5 of loss (FSDP: exactly 0)
    assert [r["spec"] for r in rows] == MUON_TWO + MUON_FOUR
    assert read_json(two/"muon_fsdp_to_tp.json") == pytest.approx(read_json(two/"straight_muon.json")[3:], abs=1e-5)   # FSDP's Muon state resumed under TP

def test_memory_matches_plan(two):
    cfg = GPTConfig(vocab_size=256, block_size=256, n_layer=4, n_head=4, n_embd=256)
    for r in read_json(two/"memory.json"):
        planned = plan(cfg, 2, r["spec"], micro_batch=8, seq_len=256).total_bytes
        assert abs(planned / r["total"] - 1) < 0.10, (r["spec"], planned, r["total"])

@pytest.fixture(scope="module")
def four(two, tmp_path_factory):
    "One launch of 4 processes: the 2-D strategies, and the 2-process checkpoints resumed at 4 under other layouts"
    d = tmp_path_factory.mktemp("four")
    code = f"""
from llm_nb.distributed import check_parallel, resume_check
check_parallel({FOUR!r}, out={str(d/'plain.json')!r})
resume_check('fsdp=4', {str(two/'ck_fsdp')!r}, False, {str(d/'fsdp_to_fsdp4.json')!r})
resume_check('fsdp=2,tp=2', {str(two/'ck_fsdp')!r}, False, {str(d/'fsdp_to_2d.json')!r})
resume_check('pp=2,fsdp=2', {str(two/'ck_tp')!r}, False, {str(d/'tp_to_pp_fsdp.json')!r})
check_parallel({MUON_FOUR!r}, out={str(d/'muon.json')!r}, cfg={SPEEDRUN!r}, optimizer='muon')
"""
    t = time.time()
    torchrun(code, nproc=4, timeout=600)
    print(f"4-process launch: {time.time() - t:.0f}s")
    return d

def test_four_processes_equal_one(four): equal(read_json(four/"plain.json"))

def test_resume_at_four(two, four):
    "Saved by 2 processes after 3 of 6 steps, resumed by 4 under FSDP, FSDP x TP (rows reordered) and pipeline x FSDP"
    for saved, resumed in [("fsdp", "fsdp_to_fsdp4"), ("fsdp", "fsdp_to_2d"), ("tp", "tp_to_pp_fsdp")]:
        assert read_json(four/f"{resumed}.json") == pytest.approx(read_json(two/f"straight_{saved}.json")[3:], abs=1e-6), resumed

def test_resume_at_one_and_export(two):
    "2 -> 1: one plain process (no process group) resumes; the consolidated export holds GPT-2's layout (TP rows put back)"
    assert resume_check("dp=1", two/"ck_tp", save=False) == pytest.approx(read_json(two/"straight_tp.json")[3:], abs=1e-6)   # (chapter 08 resumes FSDP's)
    torch.manual_seed(0)
    learn = Trainer(GPT(SMALL), RandomWindows(byte_tokens(), SMALL.block_size, 8), max_steps=6, lr=1e-2)
    for _ in range(3): learn.one_step()                           # the checkpoint holds step 3 of 6
    exported = GPT(GPTConfig(**read_json(two/"ck_tp"/"config.json")))
    load_model(exported, str(two/"ck_tp"/"model.safetensors"))        # the tp=2 run's checkpoint, consolidated by rank 0
    ref = learn.model.state_dict()                                    # GPT-2's layout, which GPT.to_hf reads (chapter 05)
    assert exported.state_dict().keys() == ref.keys()
    assert max((v - ref[k]).abs().max().item() for k, v in exported.state_dict().items()) < 5e-4   # AdamW at lr 1e-2 amplifies rounding (a row out of place would be off by ~1e-1)

# ------------------------------------------------------------------ the command
def cli_flags(corpus, out, steps=40): return ["--preset", "tiny", "--corpus", str(corpus), "--out", str(out), "--max-steps", str(steps),
                                              "--override", "ckpt_every=5,eval_every=5", "--quiet"]

def launch(*args, restarts=0, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "--max-restarts", str(restarts), "--no-python", *TRAIN, *args]

@pytest.fixture(scope="module")
def straight(env, corpus, tmp_path_factory):
    "An uninterrupted `llm_nb_train --parallel fsdp=2` run of 40 steps"
    out = tmp_path_factory.mktemp("cli")/"straight"
    subprocess.run(launch(*cli_flags(corpus, out), "--parallel", "fsdp=2"), env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    return out

def losses(out): return [r["loss"] for r in map(json.loads, (Path(out)/"metrics.jsonl").read_text().splitlines()) if not r.get("final")]

def test_cli_parallel_run_folder(straight, env):
    ck = straight/"checkpoint"
    for f in ("model.safetensors", "config.json", "tokenizer.json", "trainer.json", "parallel.json", "dcp/.metadata"): assert (ck/f).exists(), f
    for f in ("metrics.jsonl", "loss.png", "samples.txt", "run.json"): assert (straight/f).exists(), f
    assert len(losses(straight)) == 40 and json.loads((straight/"metrics.jsonl").read_text().splitlines()[-1])["final"]
    model, tok = load_gpt(straight)                                     # the consolidated export is a plain checkpoint
    assert read_json(ck/"parallel.json")["parallel"] == "fsdp=2" and model.config.vocab_size == tok.vocab_size

def workers(pid):
    "The llm_nb_train processes that the torchrun process `pid` started"
    kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [k for k in kids if "llm_nb_train" in Path(f"/proc/{k}/cmdline").read_text()]

@pytest.mark.skipif(not os.environ.get("LLM_NB_FLAKY"), reason="hung once in three runs after the restart (suspected deadlock on "
                    "resume, issue 9); run with LLM_NB_FLAKY=1")
def test_sigkill_restart_equals_uninterrupted(straight, env, corpus, tmp_path):
    "torchrun --max-restarts 1: one of two FSDP workers is SIGKILLed mid-run; all restart from the last sharded checkpoint"
    out = tmp_path/"killed"
    p = subprocess.Popen(launch(*cli_flags(corpus, out), "--parallel", "fsdp=2", restarts=1), env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state, deadline = out/"checkpoint"/"trainer.json", time.time() + 240
    while not state.exists() and p.poll() is None and time.time() < deadline: time.sleep(0.02)
    done = json.loads(state.read_text())["step"]
    ranks = workers(p.pid)
    assert p.poll() is None and len(ranks) == 2 and done < 40, (done, ranks)
    os.kill(ranks[1], signal.SIGKILL)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert "SIGKILL" in err or "exitcode: -9" in err, err[-2000:]          # the agent saw the death and restarted the workers
    assert losses(out) == losses(straight)
    a, b = load_file(out/"checkpoint"/"model.safetensors"), load_file(straight/"checkpoint"/"model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
