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
    ('llm_nb_train', '--parallel tp=2 --out {d}/r11', 2, '--parallel tp=2 needs 2 processes (the product of its degrees) but WORLD_SIZE is 1', ['r11']),
    ('llm_nb_train', '--parallel tp=two --out {d}/r12', 2, "tp='two' does not fit ParallelConfig.tp: expected int", ['r12']),
    ('llm_nb_train', '--parallel fsdp=1,zero1=True --out {d}/r13', 2, 'zero1 shards the optimizer of plain data parallelism', ['r13']),
    ('llm_nb_plan', '--world 8 --parallel fsdp=4', 2, '--parallel fsdp=4 needs 4 processes (the product of its degrees) but --world is 8', []),
    ('llm_nb_plan', '--world 2 --parallel tp=2 --seq-len 1023', 2, 'tp=2 must divide n_kv_head=12 (whole heads per GPU) and seq_len=1023', []),
    ('llm_nb_plan', '--world 8 --parallel pp=2,fsdp=4,schedule=zb', 2, "schedule='zb'; choose one of", []),
    ('llm_nb_plan', '--gpu lots', 2, "cannot read 'lots' as a size", []),
    ('llm_nb_plan', '--preset huge', 1, "unknown preset 'huge'", []),
    ('llm_nb_plan', '--world 0', 2, '--world must be positive, got 0', []),
    ('llm_nb_plan', '--parallel fsdp=8 --dtype fp8', 2, "dtype='fp8'; choose one of ['fp32', 'bf16']", []),
    ('llm_nb_plan', '--parallel fsdp=8 --ac most', 2, "activation_checkpointing='most'; choose none, full or selective", []),
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
    ('llm_nb_chat', '', 2, 'give a run folder or --url of a running server', []),
    ('llm_nb_chat', '--url localhost:8000', 2, '--url must start with http:// or https://', []),
    ('llm_nb_chat', '--url http://127.0.0.1:9', 2, 'cannot reach http://127.0.0.1:9/v1/models', []),
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
    ('llm_nb_dpo', '--out {d}/d1', 2, '--sft is required', ['d1']),
    ('llm_nb_dpo', '--sft {d}/missing --out {d}/d2', 2, 'no such run or checkpoint folder', ['d2']),
    ('llm_nb_dpo', '--sft {d}/norun --loss-type kto --out {d}/d3', 2, "loss_type='kto'; choose one of", ['d3']),
    ('llm_nb_dpo', '--sft {d}/norun --beta -1 --out {d}/d4', 2, '--beta must be positive', ['d4']),
    ('llm_nb_dpo', '--sft {d}/norun --pairs {d}/empty.txt --out {d}/d5', 1, 'empty.txt holds no pairs', ['d5']),
    ('llm_nb_dpo', '--sft {d}/norun --pairs {d}/binary.txt --out {d}/d6', 1, 'line 1: not JSON', ['d6']),
    ('llm_nb_dpo', '--sft {d}/norun --pairs {d}/no_such.jsonl --out {d}/d7', 2, 'no such pairs file', ['d7']),
    ('llm_nb_dpo', '--sft {d}/norun --out {d}/d8', 2, 'no checkpoint in', ['d8']),
    ('llm_nb_dpo', '--out {d}/norun --resume', 2, 'holds no run (no run.json)', []),
    ('llm_nb_dpo', '--sft {d}/norun --out {d}/norun --resume', 2, 'drop --sft', []),
    ('llm_nb_grpo', '--out {d}/g1', 2, '--sft is required', ['g1']),
    ('llm_nb_grpo', '--sft {d}/missing --out {d}/g2', 2, 'no such run or checkpoint folder', ['g2']),
    ('llm_nb_grpo', '--sft {d}/norun --task chess --out {d}/g3', 2, "task='chess'; choose one of", ['g3']),
    ('llm_nb_grpo', '--sft {d}/norun --override num_generations=1 --out {d}/g4', 2, 'num_generations must be at least 2', ['g4']),
    ('llm_nb_grpo', '--sft {d}/norun --override beta=-1 --out {d}/g5', 2, 'need beta >= 0', ['g5']),
    ('llm_nb_grpo', '--sft {d}/norun --time-budget 0 --out {d}/g6', 2, '--time-budget must be positive', ['g6']),
    ('llm_nb_grpo', '--out {d}/norun --resume', 2, 'holds no run (no run.json)', []),
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
    ('llm_nb_serve', '{d}/missing', 2, 'no such run or checkpoint folder', []),
    ('llm_nb_serve', '{d}/norun', 2, 'no checkpoint in', []),
    ('llm_nb_serve', '{d}/norun --port 0', 2, '--port must be positive, got 0', []),
    ('llm_nb_serve', '{d}/norun --port 70000', 2, '--port must be at most 65535', []),
    ('llm_nb_serve', '{d}/norun --slots 0', 2, '--slots must be positive', []),
    ('llm_nb_serve', '{d}/norun --queue -1', 2, '--queue must be >= 0', []),
    ('llm_nb_serve', '{d}/norun --timeout 0', 2, '--timeout must be positive', []),
    ('llm_nb_serve', '{d}/norun --int8 --compile', 2, '--int8 and --compile do not go together', []),
    ('llm_nb_eval', '{d}/missing --out {d}/e1', 2, 'no such run folder', ['e1']),
    ('llm_nb_eval', '{d}/norun --out {d}/e2', 2, 'holds no run (no run.json)', ['e2']),
    ('llm_nb_eval', '{d}/norun --n 0 --out {d}/e3', 2, '--n must be positive', ['e3']),
    ('llm_nb_eval', '{d}/norun --tasks chess --out {d}/e4', 2, "unknown task 'chess'", ['e4']),
    ('llm_nb_eval', '{d}/norun --mc -1 --out {d}/e5', 2, '--mc must be >= 0', ['e5']),
    ('llm_nb_lm_eval', '--model llm_nb --model_args path={d}/missing --tasks arc_easy --output_path {d}/l1', 2,
     'no such run or checkpoint folder', ['l1']),
    ('llm_nb_lm_eval', '--model llm_nb --model_args path={d}/norun --tasks no_such_task', 1, 'Tasks not found: no_such_task', []),
    ('llm_nb_lm_eval', '--model llm_nb --tasks x --limit abc', 2, "invalid float value: 'abc'", []),
    ('llm_nb_export', '{d}/missing --hf {d}/h1', 2, 'no such run or checkpoint folder', ['h1']),
    ('llm_nb_export', '{d}/norun', 2, 'say where to write: --hf DIR', []),
    ('llm_nb_export', '{d}/norun --hf {d}/afile', 2, 'exists; pass --force', []),
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
