"End-to-end checks of the pretraining commands that a notebook cannot hold: a real `kill -9`, torchrun DDP, the CLIs."
import json, os, signal, subprocess, sys, tempfile, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from llm_nb.data import load_corpus, split_documents
from llm_nb.runs import resolve_dtype

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(tempfile.mkdtemp(prefix="llm_nb_scripts"))   # launchers like `llm_nb_train`, `llm_nb_generate`

def script(name, func):
    "A launcher like the one pip writes for a console script (fastcore's call_parse reads sys.argv from a __main__ file)"
    path = SCRIPTS/f"{name}.py"
    path.write_text(f"import sys\nfrom llm_nb.train import {func}\nsys.exit({func}())\n")
    return [sys.executable, str(path)]

TRAIN, GENERATE = script("llm_nb_train", "train_cli"), script("llm_nb_generate", "generate_cli")

@pytest.fixture(scope="session")
def env(tmp_path_factory):
    "Environment for the subprocesses: the repo on the path and a private cache"
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "LLM_NB_CACHE": str(cache), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}

@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    "A small real corpus: slices of three training plays and one validation play"
    train, val = split_documents(load_corpus("shakespeare"), 0.1, 0)
    folder = tmp_path_factory.mktemp("plays")
    for d in train[:3] + val[:1]: (folder/f"{d.name}.txt").write_text(d.text[:30_000])
    return folder

def train(env, corpus, out, *flags, check=True):
    return subprocess.run([*TRAIN, "--preset", "tiny", "--corpus", str(corpus), "--out", str(out), *flags],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=check, timeout=300)

def losses(out): return [r["loss"] for r in map(json.loads, (Path(out)/"metrics.jsonl").read_text().splitlines()) if not r.get("final")]
def weights(out): return load_file(Path(out)/"checkpoint"/"model.safetensors")

def test_cli_end_to_end(env, corpus, tmp_path):
    r = train(env, corpus, tmp_path/"run", "--max-steps", "20")
    assert "val bits/byte" in r.stdout.splitlines()[-1], r.stdout
    for f in ("checkpoint/model.safetensors", "checkpoint/config.json", "checkpoint/tokenizer.json",
              "checkpoint/optimizer.pt", "metrics.jsonl", "loss.png", "samples.txt", "run.json"):
        assert (tmp_path/"run"/f).exists(), f
    final = json.loads((tmp_path/"run"/"metrics.jsonl").read_text().splitlines()[-1])
    assert final["final"] and final["step"] == 20 and 0 < final["val_bpb"] < 8 and final["dtype"] == "fp32"   # the tiny preset's own
    again = train(env, corpus, tmp_path/"run", "--max-steps", "20", check=False)
    assert again.returncode != 0 and "--resume" in again.stderr
    g = subprocess.run([*GENERATE, str(tmp_path/"run"), "--prompt", "ROMEO.", "--max-new-tokens", "20", "--seed", "0"],
                       env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    assert g.stdout.startswith("ROMEO.") and len(g.stdout) > len("ROMEO.") + 5

def test_time_budget(env, corpus, tmp_path):
    train(env, corpus, tmp_path/"run", "--time-budget", "4", "--quiet", "--override", "dtype=auto")
    final = json.loads((tmp_path/"run"/"metrics.jsonl").read_text().splitlines()[-1])
    assert final["step"] > 5 and 3 < final["fit_seconds"] < 8, final
    assert final["dtype"] == resolve_dtype("auto", "cpu")           # bf16 only where the CPU has bf16 kernels

MUON = "optimizer=muon,embed_lr=0.01,schedule=wsd,tie_weights=False,pos=rope"   # the cpu preset's optimizer and model options, and WSD (chapter 07a)

@pytest.mark.parametrize("recipe", ["", "," + MUON])
def test_sigkill_resume_equals_uninterrupted(env, corpus, tmp_path, recipe):
    flags = ["--max-steps", "40", "--override", "ckpt_every=5,eval_every=5,dropout=0.1" + recipe, "--quiet"]
    train(env, corpus, tmp_path/"straight", *flags)
    out = tmp_path/"killed"
    p = subprocess.Popen([*TRAIN, "--preset", "tiny", "--corpus", str(corpus), "--out", str(out), *flags],
                         env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state, deadline = out/"checkpoint"/"trainer.json", time.time() + 240
    while not state.exists() and p.poll() is None and time.time() < deadline: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    done = json.loads(state.read_text())["step"]
    assert 5 <= done < 40, done
    subprocess.run([*TRAIN, "--out", str(out), "--resume", "--quiet"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert losses(out) == losses(tmp_path/"straight") and len(losses(out)) == 40
    a, b = weights(out), weights(tmp_path/"straight")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

@pytest.mark.parametrize("recipe", ["", "," + MUON])
def test_torchrun_ddp_equals_one_process(env, corpus, tmp_path, recipe):
    flags = ["--preset", "tiny", "--corpus", str(corpus), "--max-steps", "4", "--quiet"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
                    *TRAIN, *flags, "--out", str(tmp_path/"ddp"), "--override", "batch_size=8,accum=1" + recipe],
                   env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    train(env, corpus, tmp_path/"one", "--max-steps", "4", "--override", "batch_size=8,accum=2" + recipe, "--quiet")
    a, b = weights(tmp_path/"ddp"), weights(tmp_path/"one")
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-5, diff
    assert losses(tmp_path/"ddp") == pytest.approx(losses(tmp_path/"one"), abs=1e-5)
