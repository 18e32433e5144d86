"""The planner (chapter 08a) against PyTorch's fake-tensor estimate, and `llm_nb_plan` end to end."""
import json, subprocess, sys, tempfile
from pathlib import Path
import pytest
from llm_nb.model import PRESETS
from llm_nb.plan import plan, fake_memory_subprocess

ROOT = Path(__file__).resolve().parents[1]
_launcher = Path(tempfile.mkdtemp(prefix="llm_nb_plan"))/"llm_nb_plan.py"   # like the console script pip writes
_launcher.write_text("import sys\nfrom llm_nb.plan import plan_cli\nsys.exit(plan_cli())\n")
PLAN = [sys.executable, str(_launcher)]

@pytest.mark.parametrize("name, micro_batch", [("gpt2", 1), ("gpt2-xl", 1)])
def test_plan_matches_fake_tensor_estimate(name, micro_batch):
    "Rank 0 of 8 FSDP processes, measured on fake tensors and a fake process group, against the formulas"
    fake = fake_memory_subprocess(PRESETS[name], 8, "fsdp=8", micro_batch=micro_batch, seq_len=1024)
    planned = plan(PRESETS[name], 8, "fsdp=8", micro_batch=micro_batch, seq_len=1024)
    assert abs(planned.total_bytes / fake["total"] - 1) < 0.15, (planned.total_bytes, fake)
    assert abs(planned.optimizer_bytes / fake["optstate"] - 1) < 0.01

def run(*flags):
    return subprocess.run([*PLAN, *flags], capture_output=True, text=True, timeout=120, cwd=ROOT)

def test_plan_cli_json():
    r = run("--preset", "gpt2-xl", "--world", "8", "--parallel", "fsdp=8", "--micro-batch", "1", "--seq-len", "1024",
            "--dtype", "bf16", "--gpu", "80GB", "--tokens", "300e9", "--peak-tflops", "312", "--mfu", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    for k in ("n_params", "params_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes", "total_bytes",
              "flops_per_step", "step_seconds", "train_seconds", "fits"): assert k in p, k
    assert p["fits"] and 1.5e9 < p["n_params"] < 1.6e9
    assert p["optimizer_bytes"] == pytest.approx(12 * p["n_params"] / 8, rel=0.01)   # ZeRO-3: 12 bytes per parameter / 8

def test_plan_cli_ranks_and_errors():
    r = run("--preset", "gpt2", "--override", "n_layer=36,n_embd=4096,n_head=32", "--world", "64", "--gpu", "40GB")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]
    assert rows and all(float(line.split()[2]) <= 40 for line in rows)
    bad = run("--world", "8", "--parallel", "fsdp=4")
    assert bad.returncode == 2 and "needs 4 processes" in bad.stderr and bad.stderr.count("\n") == 1
    assert run("--gpu", "lots").returncode == 2
