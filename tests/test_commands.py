"""Every console script as a user meets it: bad input gets one line (`prog: error: ...`), a non-zero exit status,
and leaves nothing half-written. Each command is called the way its console script calls it (flags in
`sys.argv`, exit status in `SystemExit`); one real launch checks the installed-script path end to end."""
import configparser, importlib, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
_cfg = configparser.ConfigParser(delimiters=['=']); _cfg.read(ROOT/'settings.ini')
SCRIPTS = dict(s.split('=') for s in _cfg['DEFAULT']['console_scripts'].split())   # name -> 'module:function'


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    "Bad inputs a user might hand a command"
    d = tmp_path_factory.mktemp('bad')
    (d/'empty.txt').write_text('')
    (d/'binary.txt').write_bytes(b'\x00\x01\x02 not text')
    (d/'afile').write_text('x')
    (d/'norun').mkdir()
    return d


# (command, flags — '{d}' is the folder of bad inputs —, exit status, what the one line says, paths that must not exist after)
CASES = [
    ('llm_nb_train', '--corpus {d}/empty.txt --out {d}/r1', 1, 'empty.txt is empty', ['r1']),
    ('llm_nb_train', '--corpus {d}/binary.txt --out {d}/r2', 1, 'binary.txt', ['r2']),
    ('llm_nb_train', '--corpus {d}/no_such.txt --out {d}/r3', 1, 'is not a corpus name', ['r3']),
    ('llm_nb_train', '--override n_layer=abc --out {d}/r4', 2, "n_layer='abc' does not fit GPTConfig.n_layer: expected int", ['r4']),
    ('llm_nb_train', '--override lr --out {d}/r5', 2, "override 'lr' is not key=value", ['r5']),
    ('llm_nb_train', '--override layers=3 --out {d}/r6', 2, "unknown field 'layers'", ['r6']),
    ('llm_nb_train', '--override n_embd=90 --out {d}/r7', 2, 'n_embd=90 must be divisible by n_head=4', ['r7']),
    ('llm_nb_train', '--time-budget -5 --out {d}/r8', 2, '--time-budget must be positive, got -5.0', ['r8']),
    ('llm_nb_train', '--max-steps 0 --out {d}/r9', 2, '--max-steps must be positive, got 0', ['r9']),
    ('llm_nb_train', '--preset huge --out {d}/r10', 2, "unknown preset 'huge'", ['r10']),
    ('llm_nb_train', '--out {d}/norun --resume', 2, 'holds no run (no run.json)', []),
    ('llm_nb_train', '--out {d}/missing --resume', 2, 'no such run folder', ['missing']),
    ('llm_nb_train', '--out {d}/afile', 2, 'is a file, not a folder', []),
    ('llm_nb_train', '--time-budget abc', 2, "invalid float value: 'abc'", []),
    ('llm_nb_generate', '{d}/missing', 2, 'no such run or checkpoint folder', []),
    ('llm_nb_generate', '{d}/norun', 2, 'no checkpoint in', []),
    ('llm_nb_generate', '{d}/norun --temperature -1', 2, 'need --temperature >= 0', []),
    ('llm_nb_generate', '{d}/norun --max-new-tokens 0', 2, '--max-new-tokens must be positive', []),
    ('llm_nb_sft', '--out {d}/s1', 2, '--base is required', ['s1']),
    ('llm_nb_sft', '--base {d}/missing --out {d}/s2', 2, 'no such run or checkpoint folder', ['s2']),
    ('llm_nb_sft', '--base {d}/norun --out {d}/s3', 2, 'no checkpoint in', ['s3']),
    ('llm_nb_sft', '--base {d}/norun --override lr=abc --out {d}/s4', 2, "lr='abc' does not fit SFTConfig.lr: expected float", ['s4']),
    ('llm_nb_sft', '--base {d}/norun --override beta=1 --out {d}/s5', 2, "unknown field 'beta'", ['s5']),
    ('llm_nb_sft', '--base {d}/norun --override batch_size=0 --out {d}/s6', 2, 'batch_size must be positive, got 0', ['s6']),
    ('llm_nb_sft', '--base {d}/norun --time-budget -5 --out {d}/s7', 2, '--time-budget must be positive, got -5.0', ['s7']),
    ('llm_nb_sft', '--base {d}/norun --max-steps 0 --out {d}/s8', 2, '--max-steps must be positive, got 0', ['s8']),
    ('llm_nb_sft', '--base {d}/norun --out {d}/afile', 2, 'is a file, not a folder', []),
    ('llm_nb_sft', '--out {d}/norun --resume --base {d}/norun', 2, 'drop --base', []),
    ('llm_nb_sft', '--out {d}/missing --resume', 2, 'no such run folder', ['missing']),
    ('llm_nb_chat', '{d}/missing', 2, 'no such run or checkpoint folder', []),
    ('llm_nb_chat', '{d}/norun', 2, 'no checkpoint in', []),
    ('llm_nb_chat', '{d}/norun --top-p 2', 2, 'need --temperature >= 0 and --top-p in (0, 1]', []),
    ('llm_nb_chat', '{d}/norun --temperature -1', 2, 'need --temperature >= 0', []),
    ('llm_nb_chat', '{d}/norun --max-new-tokens 0', 2, '--max-new-tokens must be positive', []),
    ('llm_nb_rm', '--out {d}/m1', 2, '--sft is required', ['m1']),
    ('llm_nb_rm', '--sft {d}/missing --out {d}/m2', 2, 'no such run or checkpoint folder', ['m2']),
    ('llm_nb_rm', '--sft {d}/norun --out {d}/m3', 2, 'no checkpoint in', ['m3']),
    ('llm_nb_rm', '--sft {d}/norun --override tau=-1 --out {d}/m4', 2, 'tau must be >= 0, got -1', ['m4']),
    ('llm_nb_rm', '--sft {d}/norun --override k=1 --out {d}/m5', 2, 'k must be at least 2', ['m5']),
    ('llm_nb_rm', '--sft {d}/norun --override margin=1 --out {d}/m6', 2, "unknown field 'margin'", ['m6']),
    ('llm_nb_rm', '--sft {d}/norun --override lr=abc --out {d}/m7', 2, "lr='abc' does not fit RMConfig.lr: expected float", ['m7']),
    ('llm_nb_rm', '--sft {d}/norun --time-budget 0 --out {d}/m8', 2, '--time-budget must be positive, got 0.0', ['m8']),
    ('llm_nb_rm', '--sft {d}/norun --out {d}/afile', 2, 'is a file, not a folder', []),
    ('llm_nb_rm', '--out {d}/norun --resume --sft {d}/norun', 2, 'drop --sft', []),
    ('llm_nb_rm', '--out {d}/missing --resume', 2, 'no such run folder', ['missing']),
    ('llm_nb_ppo', '--out {d}/p1', 2, '--sft and --rm are required', ['p1']),
    ('llm_nb_ppo', '--sft {d}/norun --out {d}/p2', 2, '--sft and --rm are required', ['p2']),
    ('llm_nb_ppo', '--sft {d}/missing --rm {d}/norun --out {d}/p3', 2, 'no such run or checkpoint folder', ['p3']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --out {d}/p4', 2, 'no checkpoint in', ['p4']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --override batch_size=10,minibatches=4 --out {d}/p5', 2, 'batch_size=10 must be divisible by minibatches=4', ['p5']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --override kl_estimator=k2 --out {d}/p6', 2, "kl_estimator='k2'", ['p6']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --override kl_coef=-1 --out {d}/p7', 2, 'need kl_coef >= 0', ['p7']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --override beta=1 --out {d}/p8', 2, "unknown field 'beta'", ['p8']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --max-steps 0 --out {d}/p9', 2, '--max-steps must be positive, got 0', ['p9']),
    ('llm_nb_ppo', '--sft {d}/norun --rm {d}/norun --out {d}/afile', 2, 'is a file, not a folder', []),
    ('llm_nb_ppo', '--out {d}/norun --resume --rm {d}/norun', 2, 'drop --sft, --rm', []),
    ('llm_nb_ppo', '--out {d}/missing --resume', 2, 'no such run folder', ['missing']),
    ('llm_nb_pipeline', '--stages pretrain,rlhf --out {d}/p1', 2, "unknown stage 'rlhf'", ['p1']),
    ('llm_nb_pipeline', '--override n_layer=4 --out {d}/p2', 2, "override 'n_layer=4' is not stage.field=value", ['p2']),
    ('llm_nb_pipeline', '--time-budget -1 --out {d}/p3', 2, '--time-budget must be positive', ['p3']),
    ('llm_nb_pipeline', '--corpus {d}/empty.txt --out {d}/p4', 1, 'empty.txt is empty', ['p4']),
    ('llm_nb_pipeline', '--override pretrain.n_layer=abc --out {d}/p5', 2, "n_layer='abc' does not fit", ['p5']),
    ('llm_nb_pipeline', '--out {d}/norun --resume', 2, 'holds no pipeline (no pipeline.json)', []),
    ('llm_nb_pipeline', '--out {d}/norun --resume --stages pretrain', 2, '--resume continues the pipeline with its own arguments; drop --stages', []),
    ('llm_nb_pipeline', '--out {d}/afile', 2, 'is a file, not a folder', []),
    ('llm_nb_pipeline', '--preset huge --out {d}/p6', 2, "unknown preset 'huge'", ['p6']),
    ('llm_nb_book', '--root {d}/missing', 1, '_quarto.yml not found', ['missing']),
    ('llm_nb_readme', '--check --root {d}/norun', 1, 'No such file', []),
]


def call(name, argv, monkeypatch, capsys):
    "Exit status and stderr of console script `name` run with `argv`"
    module, func = SCRIPTS[name].split(':')
    command = getattr(importlib.import_module(module), func)
    monkeypatch.setattr(sys, 'argv', [name, *argv])
    with pytest.raises(SystemExit) as e: command()
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize('name,flags,status,says,absent', CASES, ids=[f'{c[0]} {c[1]}' for c in CASES])
def test_bad_input(name, flags, status, says, absent, files, monkeypatch, capsys):
    status_got, err = call(name, flags.format(d=files).split(), monkeypatch, capsys)
    last = err.strip().splitlines()[-1]
    assert status_got == status and last.startswith(f'{name}: error: ') and says in last, err
    assert 'Traceback' not in err
    if 'invalid' not in says: assert len(err.strip().splitlines()) == 1, err   # argparse alone adds its usage line
    for p in absent: assert not (files/p).exists(), p


def test_every_command_is_covered():
    "A new console script needs bad-input cases above"
    assert set(SCRIPTS) <= {c[0] for c in CASES}, sorted(set(SCRIPTS) - {c[0] for c in CASES})


def test_real_launch_and_debug(files):
    "The installed script prints one line; with --debug (or LLM_NB_DEBUG=1) the traceback"
    module, func = SCRIPTS['llm_nb_train'].split(':')
    launcher = [sys.executable, '-c', f'import sys; from {module} import {func}; sys.exit({func}())']
    env = {**os.environ, 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([*launcher, '--corpus', str(files/'empty.txt'), '--out', str(files/'x')], capture_output=True, text=True, env=env)
    assert (r.returncode, r.stderr.strip()) == (1, f"-c: error: {files/'empty.txt'} is empty"), r.stderr
    r = subprocess.run([*launcher, '--corpus', str(files/'empty.txt'), '--out', str(files/'x'), '--debug'], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and 'Traceback' in r.stderr and 'ValueError' in r.stderr
    assert not (files/'x').exists()
