"""int8 on this CPU: validation bits/byte, decode speed and size on disk of a trained model, fp32 against dynamic int8.

Two ways to quantize the blocks' linear layers (the embedding and the tied output layer stay fp32):
`torch.ao.quantization.quantize_dynamic` (what `llm_nb.export.quantize_int8` uses) and torchao's
`Int8DynamicActivationInt8WeightConfig` / `Int8WeightOnlyConfig` (when torchao is installed).

    python bench/bench_int8.py runs/base [--rounds 3]
"""
import argparse, copy, io, os, tempfile, time, warnings
import torch
from safetensors.torch import save_model
from llm_nb.runs import load_gpt, read_run
from llm_nb.train import prepare_data, evaluate, bits_per_byte
from llm_nb.generate import generate
from llm_nb.export import quantize_int8

def torchao_variants():
    try: import torchao.quantization as tq
    except ImportError: return {}
    def make(config):
        def q(model):
            m = copy.deepcopy(model)
            tq.quantize_(m.transformer.h, config())
            return m
        return q
    return {'torchao int8 dynamic': make(tq.Int8DynamicActivationInt8WeightConfig),
            'torchao int8 weight-only': make(tq.Int8WeightOnlyConfig)}

def size_on_disk(model, fp32:bool) -> int:
    "Bytes of the saved weights: safetensors for fp32, torch.save of the quantized state dict otherwise"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'w')
        if fp32: save_model(model, path)
        else: torch.save(model.state_dict(), path)
        return os.path.getsize(path)

def top1_on_val(model, tokens, windows:int):
    "The model's most likely next token at every position of `windows` validation windows (teacher-forced)"
    T = model.config.block_size
    x = torch.stack([torch.from_numpy(tokens[i * T:(i + 1) * T].astype('int64')) for i in range(windows)])
    return model(x).argmax(-1)

def decode_tok_s(model, prompt, batch, n, rounds):
    idx = prompt.expand(batch, -1).contiguous()
    best = float('inf')
    for _ in range(rounds):
        t = time.perf_counter(); generate(model, idx, n, temperature=0); best = min(best, time.perf_counter() - t)
    return batch * n / best

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run'); ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--new-tokens', type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    model, tok = load_gpt(a.run)
    args = read_run(a.run)['args']
    cfg = args['cfg']
    data = prepare_data(args['corpus'], cfg['model']['vocab_size'], cfg['val_frac'], cfg['seed'])
    assert data.tokenizer.merges == tok.merges, "the run's tokenizer differs from its corpus cache"
    variants = {'fp32': lambda m: m, 'quantize_dynamic int8 (torch.ao.quantization)': quantize_int8} | torchao_variants()
    prompt = torch.tensor([tok.encode("ROMEO:\nWhat light through yonder window breaks? It is the east, and Juliet")[:32]])
    rows, ref = [], None
    for name, q in variants.items():
        t = time.perf_counter(); m = q(model); q_s = time.perf_counter() - t
        with torch.no_grad():
            loss, n = evaluate(m, data.val, m.config.block_size)
            bpb = bits_per_byte(loss, n, data.val_bytes)
            top1 = top1_on_val(m, data.val, 32)
            if ref is None: ref = top1
            agree = (top1 == ref).float().mean().item()
            s1 = decode_tok_s(m, prompt, 1, a.new_tokens, a.rounds)
            s16 = decode_tok_s(m, prompt, 16, a.new_tokens, a.rounds)
        rows.append((name, bpb, s1, s16, size_on_disk(m, name == 'fp32'), q_s, agree))
    base = rows[0]
    print(f"model: {a.run} ({model.num_params() / 1e6:.2f}M parameters), val {n:,} tokens, {a.threads} thread(s), "
          f"{a.new_tokens} new tokens greedy, best of {a.rounds}; top-1 = fp32: the same most likely next token on 32 validation windows\n")
    print("| weights | val bits/byte | Δ vs fp32 | decode tok/s, batch 1 | × fp32 | batch 16 | × fp32 | size on disk | × fp32 | top-1 = fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, bpb, s1, s16, size, q_s, agree in rows:
        print(f"| {name} | {bpb:.4f} | {bpb - base[1]:+.4f} | {s1:,.0f} | {s1 / base[2]:.2f}× | {s16:,.0f} | {s16 / base[3]:.2f}× | "
              f"{size / 2**20:.2f} MiB | {size / base[4]:.2f}× | {agree:.0%} |")

if __name__ == '__main__': main()
