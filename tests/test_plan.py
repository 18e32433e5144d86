"""`llm_nb_plan` end to end; its bad-input cases are in tests/test_commands.py (chapter 08a checks the planner itself: against the ZeRO paper, Korthikanti et al.,
nanoGPT's time estimate and PyTorch's fake-tensor estimate of GPT-2 small; `bench/bench_distributed.py fake` does GPT-2 XL)."""
import contextlib, io, json, subprocess, sys, tempfile
from pathlib import Path
import pytest
from llm_nb.plan import plan_cli

ROOT = Path(__file__).resolve().parents[1]
_launcher = Path(tempfile.mkdtemp(prefix="llm_nb_plan"))/"llm_nb_plan.py"   # like the console script pip writes
_launcher.write_text("import sys\nfrom llm_nb.plan import plan_cli\nsys.exit(plan_cli())\n")
PLAN = [sys.executable, str(_launcher)]

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

def test_plan_cli_ranks_what_fits():
    "Without --parallel: every strategy that fits in 40 GB for a 7 B-parameter GPT on 16 GPUs, fastest first"
    out = io.StringIO()
    with contextlib.redirect_stdout(out): plan_cli(preset="gpt2", override="n_layer=36,n_embd=4096,n_head=32", world=16, gpu="40GB")
    rows = out.getvalue().splitlines()[1:]
    assert rows and all(float(line.split()[2]) <= 40 for line in rows)
    days = [float(line.split()[3]) for line in rows]
    assert days == sorted(days)
