"""Evaluation and export end to end: the report card command, lm-evaluation-harness through its own command line (our
`llm_nb` model) and through its `local-completions` model pointed at our server, and `llm_nb_export` loaded back by
`transformers` offline. Tiny random models; lm-eval runs offline on a local YAML + jsonl task."""
import json, subprocess, sys
from dataclasses import asdict
from pathlib import Path
import pytest, torch
from safetensors.torch import save_model
from llm_nb.model import GPT, GPTConfig
from llm_nb.tokenizer import BPETokenizer
from llm_nb.data import load_corpus
from llm_nb.runs import save_run, write_json, load_gpt
from llm_nb.evaluate import next_line_items, multiple_choice, encode_pair, loglikelihoods, eval_cli

DOCS = load_corpus('shakespeare')


def make_run(folder:Path, stage:str='pretrain', base=None, seed:int=0, **cfg) -> Path:
    "A run folder holding a small random GPT and a tokenizer trained on a play"
    tok = BPETokenizer.train(DOCS[0].text[:50_000], 400)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32, **cfg)).eval()
    ck = folder/'checkpoint'; ck.mkdir(parents=True)
    save_model(model, str(ck/'model.safetensors')); write_json(ck/'config.json', asdict(model.config))
    tok.save(ck/'tokenizer.json'); write_json(ck/'trainer.json', {})
    save_run(folder, stage, dict(corpus='shakespeare', cfg=dict(val_frac=0.1, seed=0)) if base is None else dict(base=str(base)))
    return folder


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp('eval')
    base = make_run(d/'base')
    return base, make_run(d/'sft', 'sft', base=base, seed=1)


@pytest.fixture(scope='module')
def task(tmp_path_factory):
    "Chapter 14's next-line items as a local lm-eval task (YAML + jsonl)"
    d = tmp_path_factory.mktemp('task')
    items = next_line_items(DOCS[1:3], n=24, context_lines=2, seed=3)
    (d/'items.jsonl').write_text("".join(json.dumps(asdict(it)) + "\n" for it in items))
    (d/'next_line.yaml').write_text(f"""task: llm_nb_next_line
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d/'items.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    return d, items


def test_report_card_command(runs, tmp_path, monkeypatch, capsys):
    base, sft = runs
    monkeypatch.setattr(sys, 'argv', ['llm_nb_eval', str(base), str(sft), '--out', str(tmp_path/'report'), '--tasks', 'arithmetic',
                                      '--n', '12', '--mc', '16'])
    eval_cli()
    out = capsys.readouterr().out
    md = (tmp_path/'report'/'report.md').read_text()
    for want in ('| base | pretrain |', '| sft | sft |', 'val bits/byte', 'next line acc_norm', 'arithmetic score', 'n: '):
        assert want in md and want in out, want
    report = json.loads((tmp_path/'report'/'report.json').read_text())
    assert [r['stage'] for r in report] == ['pretrain', 'sft'] and report[0]['metrics']['arithmetic_score']['n'] == 12
    assert (tmp_path/'report'/'report.png').read_bytes()[:4] == b'\x89PNG'


def test_lm_eval_command_line(runs, task, tmp_path):
    "llm_nb_lm_eval (lm-eval's own CLI, our model registered) on a local task: the accuracies of our harness"
    pytest.importorskip('lm_eval')
    base, _ = runs
    d, items = task
    cmd = [sys.executable, '-c', 'import sys; from llm_nb.evaluate import lm_eval_cli; sys.exit(lm_eval_cli())', '--model', 'llm_nb',
           '--model_args', f'path={base}', '--tasks', 'llm_nb_next_line', '--include_path', str(d), '--output_path', str(tmp_path/'out')]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(next((tmp_path/'out').rglob('results_*.json')).read_text())['results']['llm_nb_next_line']
    model, tok = load_gpt(base)
    ours = multiple_choice(model, tok, items)
    assert results['acc,none'] == pytest.approx(ours['acc'].value) and results['acc_norm,none'] == pytest.approx(ours['acc_norm'].value)


def test_local_completions_against_our_server(runs, task):
    "lm-eval's own `local-completions` model, pointed at llm_nb_serve's /v1/completions: the same log-likelihoods as our harness"
    lm_eval = pytest.importorskip('lm_eval'); pytest.importorskip('fastapi')
    from llm_nb.engine import Engine
    from llm_nb.serve import Served, make_app, BackgroundServer
    base, _ = runs
    d, items = task
    model, tok = load_gpt(base)
    # through an API lm-eval scores at most max_length - 1 prompt tokens (one is left for the generated token); these items fit
    assert all(sum(map(len, encode_pair(tok, it.context, c))) <= 127 for it in items[:12] for c in it.choices)
    with BackgroundServer(make_app(Served(tok, 'tiny', Engine(model, max_slots=8)))) as srv:
        out = lm_eval.simple_evaluate(model='local-completions', log_samples=True, limit=12,
                                      model_args=f"base_url={srv.url}/v1/completions,model=tiny,tokenizer_backend=remote,"
                                                 f"tokenized_requests=True,max_length=128,num_concurrent=1,max_retries=1",
                                      tasks=['llm_nb_next_line'], task_manager=lm_eval.tasks.TaskManager(include_path=str(d)))
    samples = sorted(out['samples']['llm_nb_next_line'], key=lambda s: s['doc_id'])
    theirs = torch.tensor([[r[0][0] for r in s['resps']] for s in samples])
    ours = torch.tensor(multiple_choice(model, tok, items[:12])['loglikelihoods'])
    assert torch.allclose(theirs, ours, atol=1e-4), (theirs - ours).abs().max()


@pytest.mark.parametrize('arch', ['gpt2', 'neox'])
def test_export_loads_offline_in_transformers(runs, tmp_path, arch):
    "A run exports as a folder transformers opens offline (GPT-2, or GPT-NeoX for rotary positions) and answers like ours"
    transformers = pytest.importorskip('transformers')
    from llm_nb.export import export_cli
    from llm_nb.chat import encode_chat, stop_ids
    from llm_nb.generate import generate
    base = runs[0] if arch == 'gpt2' else make_run(tmp_path/'rope', pos='rope', tie_weights=False)
    sys_argv, sys.argv = sys.argv, ['llm_nb_export', str(base), '--hf', str(tmp_path/'hf')]
    try: export_cli()
    finally: sys.argv = sys_argv
    names = {p.name for p in (tmp_path/'hf').iterdir()}
    assert {'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'} <= names
    code = f"""
import json, torch, transformers
m = transformers.AutoModelForCausalLM.from_pretrained({str(tmp_path/'hf')!r}, local_files_only=True)
t = transformers.AutoTokenizer.from_pretrained({str(tmp_path/'hf')!r}, local_files_only=True)
ids = t.apply_chat_template([dict(role='user', content='Who is Juliet?')], add_generation_prompt=True, return_dict=True, return_tensors='pt')['input_ids']
out = m.generate(ids, max_new_tokens=16, do_sample=False)
print(json.dumps(dict(ids=ids[0].tolist(), new=out[0, ids.size(1):].tolist(), eos=m.generation_config.eos_token_id, arch=m.config.model_type)))
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env={'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin'})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    model, tok = load_gpt(base)
    ids = encode_chat(tok, [dict(role='user', content='Who is Juliet?')], add_generation_prompt=True)[0]
    assert got['ids'] == ids and got['eos'] == stop_ids(tok) and got['arch'] == {'gpt2': 'gpt2', 'neox': 'gpt_neox'}[arch]
    ours = generate(model, torch.tensor([ids]), 16, temperature=0, stop=stop_ids(tok), pad_id=-1)[0, len(ids):].tolist()
    assert got['new'] == [t for t in ours if t != -1][:len(got['new'])]


def test_export_refuses_what_hf_cannot_express(tmp_path, monkeypatch, capsys):
    from llm_nb.export import export_cli
    run = make_run(tmp_path/'rope', pos='rope', norm='rmsnorm')     # rotary goes to GPT-NeoX, which has no RMSNorm
    monkeypatch.setattr(sys, 'argv', ['llm_nb_export', str(run), '--hf', str(tmp_path/'hf')])
    with pytest.raises(SystemExit) as e: export_cli()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith('llm_nb_export: error: cannot export') and "GPT-NeoX cannot express norm='rmsnorm'" in err and '\n' not in err
    assert not (tmp_path/'hf').exists()
