"""The pipeline killed with SIGKILL mid-stage and resumed with `--resume` ends with the same models as a run that was
never interrupted (CPU, fixed seeds, fixed steps)."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
STEPS = dict(pretrain=60, sft=40)
FLAGS = ['--preset', 'tiny', '--fixed-steps', '--quiet', '--override',
         'pretrain.max_steps=60,pretrain.ckpt_every=10,pretrain.eval_every=20,sft.max_steps=40,sft.ckpt_every=10']
ALL = ['pretrain', 'sft', 'rm', 'ppo', 'dpo', 'grpo', 'eval']


def pipeline(*args, wait=True):
    cmd = [sys.executable, '-c', 'import sys; from llm_nb.pipeline import pipeline_cli; sys.exit(pipeline_cli())', *args]
    env = {**os.environ, 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if not wait: return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def step_of(checkpoint: Path) -> int:
    try: return json.loads((checkpoint/'trainer.json').read_text())['step']
    except (OSError, ValueError, KeyError): return 0


def weights(run: Path) -> dict:
    return load_file(str(run/'checkpoint'/'model.safetensors'))


@pytest.fixture(scope='module')
def whole(tmp_path_factory):
    "An uninterrupted run of every stage"
    out = tmp_path_factory.mktemp('pipeline')/'whole'
    card = pipeline('--out', str(out), *FLAGS)
    assert all(any(l.startswith(f'{name} ') for l in card.splitlines()) for name in ALL) and 'llm_nb_chat' in card and '# Report card' in card, card
    assert sorted(p.name for p in out.iterdir()) == sorted(['pipeline.json', *ALL])
    for name in ALL[:-1]: assert (out/name/'run.json').is_file() and (out/name/'checkpoint').is_dir(), name
    return out


@pytest.mark.parametrize('stage,at', [('pretrain', 20), ('sft', 20)])
def test_sigkill_then_resume_equals_uninterrupted(whole, tmp_path, stage, at):
    killed = pipeline('--out', str(tmp_path/'killed'), '--stages', 'pretrain,sft', *FLAGS, wait=False)
    ckpt, t0 = tmp_path/'killed'/stage/'checkpoint', time.time()
    while step_of(ckpt) < at and killed.poll() is None and time.time() - t0 < 300: time.sleep(0.01)
    killed.send_signal(signal.SIGKILL); killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()
    state = json.loads((tmp_path/'killed'/'pipeline.json').read_text())
    assert stage not in state['done'] and step_of(ckpt) < STEPS[stage]      # it really stopped mid-stage
    pipeline('--out', str(tmp_path/'killed'), '--resume')
    for name, steps in STEPS.items():
        a, b = weights(whole/name), weights(tmp_path/'killed'/name)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name
        assert json.loads((tmp_path/'killed'/'pipeline.json').read_text())['done'][name]['result']['step'] == steps
