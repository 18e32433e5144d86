"Hugging Face GPT-2 <-> llm_nb GPT: cases the chapter 05 notebook does not hold (pytest tests/test_hf_interop.py)"
import sys, pytest, torch
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
