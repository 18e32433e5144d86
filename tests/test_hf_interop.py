"Hugging Face GPT-2 / GPT-NeoX <-> llm_nb GPT: cases the chapter 05 notebook does not hold (pytest tests/test_hf_interop.py)"
import sys, pytest, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
from llm_nb.model import GPT, get_config, hf_to_llm_nb

transformers = pytest.importorskip('transformers')
transformers.logging.set_verbosity_error(); transformers.logging.disable_progress_bar()
torch.set_num_threads(1)

def random_hf(seed=0, **shape):
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(bos_token_id=None, eos_token_id=None, **shape)).eval()

@pytest.mark.parametrize('shape', [dict(n_layer=4, n_head=6, n_embd=48, vocab_size=1000, n_positions=128, tie_word_embeddings=False),
                                   dict(n_layer=2, n_head=8, n_embd=64, vocab_size=64, n_positions=16, activation_function='gelu_pytorch_tanh')])
def test_left_padded_batch_matches_hf(shape):
    "Our attn_mask/position_ids semantics agree with HF's attention_mask/position_ids on a left-padded batch"
    hf = random_hf(**shape); ours = GPT.from_hf(hf)
    idx = torch.randint(0, shape['vocab_size'], (3, 12))
    mask = torch.ones_like(idx); mask[1, :4] = 0; mask[2, :9] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        want, got = hf(idx, attention_mask=mask, position_ids=pos).logits, ours(idx, attn_mask=mask, position_ids=pos)
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-4, rtol=0)

def random_neox(seed=0, **shape):
    "A random GPTNeoXForCausalLM with our block's settings (sequential residual, every head dimension rotated, tanh GELU)"
    torch.manual_seed(seed)
    shape = dict(intermediate_size=4 * shape['hidden_size'], hidden_act='gelu_pytorch_tanh', use_parallel_residual=False,
                 rope_parameters=dict(rope_type='default', rope_theta=10000.0, partial_rotary_factor=1.0), bos_token_id=None, eos_token_id=None) | shape
    return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**shape)).eval()

def test_left_padded_batch_matches_neox():
    "Rotary positions under left padding: our position_ids rotate q and k as GPT-NeoX's do"
    hf = random_neox(num_hidden_layers=3, num_attention_heads=4, hidden_size=64, vocab_size=500, max_position_embeddings=64)
    ours = GPT.from_hf(hf)
    idx = torch.randint(0, 500, (3, 12))
    mask = torch.ones_like(idx); mask[1, :4] = 0; mask[2, :9] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        want, got = hf(idx, attention_mask=mask, position_ids=pos).logits, ours(idx, attn_mask=mask, position_ids=pos)
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], atol=1e-4, rtol=0)

def test_rotary_reward_model_matches_neox_classifier():
    "A rotary reward model exports as GPTNeoXForSequenceClassification, which reads the score at the last real token too"
    from llm_nb.reward import RewardModel
    torch.manual_seed(0)
    rm = RewardModel(get_config('tiny', pos='rope', tie_weights=False)).eval()
    hf = rm.to_hf(pad_token_id=0)
    assert type(hf).__name__ == 'GPTNeoXForSequenceClassification'
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    with torch.no_grad(): torch.testing.assert_close(hf(ids, attention_mask=(ids != 0).long()).logits.squeeze(-1), rm(ids, (ids != 0).long()), atol=1e-5, rtol=0)

def test_rotary_chat_model_saves_and_loads_as_neox(tmp_path):
    "save_hf writes a rotary model that AutoModelForCausalLM opens as GPT-NeoX; our loader reads the folder back bit for bit"
    from llm_nb.chat import save_hf
    from llm_nb.tokenizer import BPETokenizer
    tok = BPETokenizer.train([(ROOT/"nbs"/"05_model.ipynb").read_text()[:20_000]], 300)
    torch.manual_seed(0)
    model = GPT(get_config('tiny', vocab_size=tok.vocab_size, pos='rope', tie_weights=False)).eval()
    save_hf(model, tok, tmp_path/'hf')
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path/'hf').eval()
    assert type(hf).__name__ == 'GPTNeoXForCausalLM'
    back = GPT.from_hf(tmp_path/'hf')
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    idx = torch.randint(0, tok.vocab_size, (1, 6))
    with torch.no_grad(): torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-4, rtol=0)

def test_gpt2model_keys_and_legacy_buffers():
    "A bare GPT2Model state dict (no 'transformer.' prefix, no lm_head) with old-style attn.bias buffers loads"
    hf = random_hf(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=32)
    sd = {k.removeprefix('transformer.'): v for k, v in hf.transformer.state_dict().items()}
    for i in range(2): sd[f'h.{i}.attn.bias'] = torch.ones(1, 1, 32, 32).tril().bool()   # what transformers < 4.4x stored
    ours = GPT.from_hf(sd, n_head=2)
    idx = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours.hidden_states(idx), hf.transformer(idx).last_hidden_state, atol=1e-4, rtol=0)
    assert set(hf_to_llm_nb(sd)) == set(ours.state_dict()) - {'lm_head.weight'}

def test_to_hf_keeps_dtype_and_config_fields():
    m = GPT(get_config('tiny', dropout=0.1)).to(torch.bfloat16)
    hf = m.to_hf(eos_token_id=511)
    assert next(hf.parameters()).dtype == torch.bfloat16 and not hf.training
    assert (hf.config.eos_token_id, hf.config.resid_pdrop, hf.config.n_positions) == (511, 0.1, 64)

def test_clear_error_without_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, 'transformers', None)      # makes `import transformers` raise ImportError
    with pytest.raises(ImportError, match='pip install transformers'): GPT(get_config('tiny')).to_hf()
    with pytest.raises(ImportError, match='pip install transformers'): GPT.from_pretrained('gpt2')
