"Supervised fine-tuning and chat beyond the notebooks: TRL's SFTTrainer as the oracle of the loss, the transformers round trip, the commands as real processes and with bad input"
import io, json, os, subprocess, sys, tempfile
from contextlib import redirect_stderr
from pathlib import Path
import pytest, torch
from llm_nb.data import load_corpus, split_documents, corpus_dir, cache_dir
from llm_nb.tokenizer import BPETokenizer
from llm_nb.model import GPT, GPTConfig
from llm_nb.runs import load_gpt
from llm_nb.chat import chat_session, generate_replies, save_hf, stream_reply
from llm_nb.tasks import pronunciations, task_conversations, write_jsonl
from llm_nb.sft import ConversationBatches, encode_conversations, sft_loss, sft_cli, load_base

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(tempfile.mkdtemp(prefix="llm_nb_scripts"))

def script(name, module, func):
    "A launcher like the one pip writes for a console script"
    path = SCRIPTS/name                    # no suffix: argparse names the program after the file
    path.write_text(f"import sys\nfrom llm_nb.{module} import {func}\nsys.exit({func}())\n")
    return [sys.executable, str(path)]

TRAIN, SFT, CHAT = script("llm_nb_train", "train", "train_cli"), script("llm_nb_sft", "sft", "sft_cli"), script("llm_nb_chat", "chat", "chat_cli")

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    "Subprocess environment: the repo on the path, a private cache that shares the corpus and the pronouncing dictionary"
    corpus_dir("shakespeare"); pronunciations()
    cache = tmp_path_factory.mktemp("cache")
    for name in ("shakespeare", "cmudict"): (cache/name).symlink_to(cache_dir()/name)
    return {**os.environ, "LLM_NB_CACHE": str(cache), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}

@pytest.fixture(scope="module")
def base(env, tmp_path_factory):
    "A tiny pretrained run whose context holds the tasks' conversations"
    train, _ = split_documents(load_corpus("shakespeare"), 0.1, 0)
    folder = tmp_path_factory.mktemp("plays")
    for d in train[:3]: (folder/f"{d.name}.txt").write_text(d.text[:30_000])
    out = tmp_path_factory.mktemp("runs")/"base"
    subprocess.run([*TRAIN, "--preset", "tiny", "--corpus", str(folder), "--out", str(out), "--max-steps", "10",
                    "--override", "block_size=256,vocab_size=400", "--quiet"], env=env, check=True, capture_output=True, timeout=120)
    return out

def run(cmd, env, stdin=None):
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=180)

RECIPE = "batch_size=4,examples=8,eval_prompts=5,ckpt_every=3,dtype=fp32,multi_turn=0.5"

@pytest.fixture(scope="module")
def one_process(env, base, tmp_path_factory):
    "A tiny SFT run through the command, in one process with two micro-batches per step"
    out = tmp_path_factory.mktemp("sft")/"one"
    r = run([*SFT, "--base", str(base), "--out", str(out), "--max-steps", "3", "--override", RECIPE + ",accum=2", "--quiet"], env)
    assert r.returncode == 0, r.stderr
    return out

def test_sft_cli_end_to_end(env, base, one_process):
    out = one_process
    assert {p.name for p in out.iterdir()} == {"checkpoint", "loss.png", "metrics.jsonl", "run.json", "samples.txt"}
    final = json.loads((out/"metrics.jsonl").read_text().splitlines()[-1])
    assert final["step"] == 3 and final["verse_n"] == 5 and 0 <= final["play_format"] <= 1 and len(final["arithmetic_score_ci"]) == 2
    assert json.loads((out/"run.json").read_text())["stage"] == "sft"
    again = run([*SFT, "--base", str(base), "--out", str(out)], env)
    assert again.returncode == 2 and "--resume" in again.stderr and again.stderr.count("\n") == 1
    model, tok = load_gpt(out)
    assert tok.special_tokens == load_gpt(base)[1].special_tokens

def test_torchrun_ddp_equals_one_process(env, base, one_process, tmp_path):
    "Two processes with accum=1 take the same steps as one process with accum=2 (the loss normaliser spans ranks)"
    from safetensors.torch import load_file
    r = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python", *SFT,
             "--base", str(base), "--out", str(tmp_path/"ddp"), "--max-steps", "3", "--override", RECIPE + ",accum=1", "--quiet"], env)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = load_file(tmp_path/"ddp"/"checkpoint"/"model.safetensors"), load_file(one_process/"checkpoint"/"model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    losses = lambda out: [json.loads(l)["loss"] for l in (out/"metrics.jsonl").read_text().splitlines()[:-1]]
    assert losses(tmp_path/"ddp") == pytest.approx(losses(one_process), abs=1e-5)

def sft_error(*argv):
    "Run llm_nb_sft in this process with `argv`; (exit status, stderr)"
    old, err, code = sys.argv, io.StringIO(), 0
    sys.argv = ["llm_nb_sft", *argv]
    try:
        with redirect_stderr(err): sft_cli()
    except SystemExit as e: code = e.code
    finally: sys.argv = old
    return code, err.getvalue()

def test_sft_bad_data(base, tmp_path):
    "Bad conversations need a real base to reach them; the flag cases are in tests/test_commands.py"
    rows = task_conversations(n=dict(play=2, arithmetic=2, verse=2))
    no_reply = write_jsonl(rows + [dict(messages=[dict(role="user", content="hi")])], tmp_path/"no_reply.jsonl")
    too_long = write_jsonl(rows + [dict(messages=[dict(role="user", content="x " * 300), dict(role="assistant", content="y")])], tmp_path/"long.jsonl")
    (tmp_path/"broken.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}\n')
    cases = [(["--data", str(tmp_path/"broken.jsonl")], "cannot be read as a dataset"), (["--data", str(tmp_path/"none.jsonl")], "no such file"),
             (["--data", str(no_reply)], "conversation 6: the conversation has no assistant turn"),
             (["--data", str(too_long)], "conversation 6 has"), (["--data", "plays.txt"], "unknown data source")]
    for flags, msg in cases:
        out = tmp_path/"out"
        code, err = sft_error("--base", str(base), *flags, "--out", str(out), "--max-steps", "2")
        assert code in (1, 2) and err.startswith("llm_nb_sft: error: ") and msg in err and err.count("\n") == 1, (flags, err)
        assert not out.exists(), flags                                  # nothing half-written

def test_sft_from_a_transformers_folder(base, tmp_path):
    "The GPT.from_hf route: a save_pretrained folder (offline) fine-tunes, and its tokenizer comes back exactly"
    model, tok = load_gpt(base)
    folder = save_hf(model, tok, tmp_path/"hf")
    hf_model, hf_tok = load_base(folder)
    assert hf_tok.ranks == tok.ranks and hf_tok.special_tokens == tok.special_tokens
    assert all(torch.equal(a, b) for a, b in zip(hf_model.state_dict().values(), model.state_dict().values()))
    code, err = sft_error("--base", str(folder), "--out", str(tmp_path/"sft"), "--max-steps", "2", "--quiet",
                          "--override", "batch_size=2,examples=4,eval_prompts=0")
    assert code == 0, err
    assert (tmp_path/"sft"/"checkpoint"/"model.safetensors").exists()

def test_transformers_greedy_chat_equals_ours(base, tmp_path):
    transformers = pytest.importorskip("transformers")
    model, tok = load_gpt(base)
    folder = save_hf(model, tok, tmp_path/"hf")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    convs = [r["messages"][:1] for r in task_conversations(n=dict(play=2, arithmetic=2, verse=2))]
    ours = generate_replies(model, tok, convs, max_new_tokens=20)
    for c, r in zip(convs, ours):
        x = hf_tok.apply_chat_template(c, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        assert x["input_ids"][0].tolist() == r.prompt_ids
        new = hf_model.generate(**x, max_new_tokens=20, do_sample=False)[0, x["input_ids"].shape[1]:].tolist()
        assert new[:len(r.ids)] == r.ids                               # transformers stops at <|im_end|>; we also at <|im_start|>

def test_sft_loss_and_gradients_equal_trl():
    "Our loss and gradients on a padded batch equal TRL SFTTrainer.compute_loss on the same weights and conversations"
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    train, _ = split_documents(load_corpus("shakespeare"), 0.1, 0)
    tok = BPETokenizer.train([d.text[:20_000] for d in train], vocab_size=600)
    convs = [r["messages"] for r in task_conversations(n=dict(play=3, arithmetic=3, verse=2))]
    convs.append(convs[0] + [dict(role="user", content="Are you sure?"), dict(role="assistant", content="Quite sure.")])
    convs.append([dict(role="system", content="Answer in verse.")] + convs[1])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=2, n_head=2, n_embd=64, dropout=0.0)).train()
    hf = model.to_hf().train()
    args = SFTConfig(output_dir=tempfile.mkdtemp(), assistant_only_loss=True, bf16=False, fp16=False, use_cpu=True,
                     per_device_train_batch_size=len(convs), max_length=None, report_to=[], dataloader_num_workers=0)
    trainer = SFTTrainer(model=hf, args=args, train_dataset=Dataset.from_list([dict(messages=c) for c in convs]), processing_class=tok.to_hf())
    batch = next(iter(trainer.get_train_dataloader()))
    trl_loss = trainer.compute_loss(hf, batch)
    trl_loss.backward()
    encoded = encode_conversations(tok, convs, 256)
    x, y, norm = ConversationBatches(encoded, len(convs), tok.special_tokens["<|pad|>"])(0)[0]
    theirs = sorted(l[1:][l[1:] != -100].tolist() for l in batch["labels"])          # TRL's labels are unshifted
    assert theirs == sorted(r[r != -100].tolist() for r in y)                        # the same label tokens
    loss = sft_loss(model, (x, y, norm))
    loss.backward()
    assert abs(loss.item() - trl_loss.item()) < 1e-6, (loss.item(), trl_loss.item())
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    ours = dict(model.named_parameters())
    for name, p in hf.named_parameters():
        g = ours[name].grad
        torch.testing.assert_close(p.grad, g.t() if name.endswith(conv1d) else g, atol=1e-6, rtol=1e-5)

def test_chat_cli_through_a_pipe(env, base):
    "Conversation kept across turns, /reset, /system, /quit, with stdin a pipe: the output is chat_session's with greedy stream_reply"
    model, tok = load_gpt(base)
    lines = ["hello", "and then?", "/reset", "hello", "/system Be brief.", "/reset", "hello", "/quit", "never read"]
    want, seen = io.StringIO(), []
    def reply(messages): seen.append(messages); return stream_reply(model, tok, messages, max_new_tokens=10, temperature=0)
    chat_session(reply, lines, want.write)
    assert [len(m) for m in seen][-2:] == [1, 2] and seen[-1][0]["role"] == "system"
    r = run([*CHAT, str(base), "--temperature", "0", "--max-new-tokens", "10"], env, stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == want.getvalue() and "(new conversation)" in r.stdout

def test_chat_cli_in_a_terminal(env, base):
    "stdin a real (pseudo-)terminal: the banner, the prompts, a streamed reply, /quit"
    import pty, select
    master, slave = pty.openpty()
    p = subprocess.Popen([*CHAT, str(base), "--temperature", "0", "--max-new-tokens", "5"], stdin=slave, stdout=slave, stderr=slave,
                         env=env, cwd=ROOT)
    os.close(slave)
    os.write(master, b"hello\n/quit\n")                  # typed ahead: the terminal holds it until the chat reads
    out = b""
    while select.select([master], [], [], 60)[0]:
        try: chunk = os.read(master, 4096)
        except OSError: break                             # EIO: the chat closed the terminal
        if not chunk: break
        out += chunk
    os.close(master)
    assert p.wait(timeout=60) == 0
    text = out.decode(errors="replace")
    assert f"chatting with {base}" in text and "you> " in text and "bot> " in text, text
