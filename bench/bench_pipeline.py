"""The README's main command, measured: `llm_nb_pipeline` with its defaults (the `cpu` recipes, 900 s), timed wall to wall.

Runs the pipeline as a user does (a fresh process, `--out` a new folder), then writes what the front page and
chapter 17 show: `bench/results/pipeline.md` (the machine, the wall time, the stage table with each stage's own
metric, 95 % intervals and seconds, and the evaluation's report card) and `bench/results/pipeline_report.png` (the
report card's figure). `--from DIR` summarises a pipeline that already ran into DIR instead of running one.

    python bench/bench_pipeline.py                          # ~15 minutes on a 2-core CPU
    python bench/bench_pipeline.py --from runs/pipeline     # only write the summary of an earlier run
    python bench/bench_pipeline.py --name pipeline_avx2     # another machine's card beside the front page's
"""
import argparse, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
from llm_nb.pipeline import pipeline_card
from llm_nb.runs import read_json, resolve_dtype
import torch

RESULTS = Path(__file__).parent/"results"

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="done", default=None, help="a finished pipeline folder to summarise (default: run one)")
    p.add_argument("--out", default=None, help="pipeline folder (default: a temporary one)")
    p.add_argument("--time-budget", type=float, default=900, help="seconds for the whole pipeline")
    p.add_argument("--name", default="pipeline", help="results file stem: bench/results/NAME.md and NAME_report.png")
    a = p.parse_args()
    wall = None
    if a.done: out = Path(a.done)
    else:
        out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="bench_pipeline"))/"pipeline"
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "import sys; from llm_nb.pipeline import pipeline_cli; sys.exit(pipeline_cli())",
                        "--out", str(out), "--time-budget", str(a.time_budget)], check=True)
        wall = time.time() - t0
    state = read_json(out/"pipeline.json", "pipeline state")
    if "eval" not in state["done"]: sys.exit(f"{out}: the pipeline has not finished (no eval stage)")
    report = Path(state["done"]["eval"]["result"]["report"])
    stages_s = sum(d["seconds"] for d in state["done"].values())
    timing = (f"wall time {wall:.0f} s (stages {stages_s:.0f} s)" if wall else f"stages {stages_s:.0f} s (wall time not measured: --from)")
    head = (f"`llm_nb_pipeline --time-budget {state['args']['time_budget']:.0f}` (preset {state['args']['preset']}, corpus "
            f"{state['args']['corpus']}) on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels, dtype auto = {resolve_dtype('auto', 'cpu')}): {timing}")
    text = f"{head}\n\n```\n{pipeline_card(state['done'])}\n```\n\n{report.read_text().strip().removeprefix('# Report card').strip()}\n"
    text = text.replace("![report](report.png)", "").rstrip() + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/f"{a.name}.md").write_text(text)
    shutil.copy(report.with_suffix(".png"), RESULTS/f"{a.name}_report.png")
    print(text)

if __name__ == "__main__": main()
