"Every LoRA key family holds the same LoRA: conversions keep every module's delta, alpha and the header metadata."
import itertools

import pytest
import torch
from diffusers import WanTransformer3DModel
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file

from wan_nb.lora_io import (FORMATS, Lora, convert_lora, lora_from_peft_model, lora_state_dict, merge_lora, random_lora,
                            read_lora, wan_shapes, write_lora)
from wan_nb.models import TINY_TRANSFORMER

SHAPES = wan_shapes(TINY_TRANSFORMER['num_layers'], 64, TINY_TRANSFORMER['ffn_dim'])
METADATA = {'ss_network_dim': '4', 'ss_network_alpha': '2.5', 'ss_output_name': 'dense-scenes', 'wan_nb.run': 'abc123'}
TARGETS = ['to_q', 'to_k', 'to_v', 'to_out.0', 'ffn.net.0.proj', 'ffn.net.2']


def path(d, to):
    return d/to if to == 'peft' else d/f'{to}.safetensors'


def assert_same(a: Lora, b: Lora):
    assert list(a.modules) == list(b.modules)
    for n, m in a.modules.items():
        torch.testing.assert_close(b.modules[n].delta(), m.delta(), rtol=0, atol=0)
    assert b.metadata == a.metadata


@pytest.mark.parametrize('first,second', list(itertools.permutations(FORMATS, 2)))
def test_conversion_keeps_deltas_alphas_and_metadata(tmp_path, first, second):
    lora = random_lora(SHAPES, rank=4, alpha=2.5, metadata=METADATA, dtype=torch.bfloat16)
    write_lora(lora, path(tmp_path, first), first)
    summary = convert_lora(path(tmp_path, first), path(tmp_path, second), second)
    back = read_lora(path(tmp_path, second))
    assert_same(lora, back)
    assert {m.alpha for m in back.modules.values()} == {2.5} and back.modules['blocks.0.attn1.to_q'].A.dtype == torch.bfloat16
    assert summary['modules'] == 40 and summary['ranks'] == {'4': 40}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({path(tmp_path, first).name, path(tmp_path, second).name})


def test_per_module_ranks_and_alphas_survive_every_family(tmp_path):
    lora = random_lora(SHAPES, rank=4, alpha=4.0)
    for i, m in enumerate(lora.modules.values()):
        if i % 3 == 0: m.A, m.B, m.alpha = m.A[:2], m.B[:, :2], 0.5
        elif i % 3 == 1: m.alpha = 1.0
    for to in FORMATS: assert_same(lora, read_lora(write_lora(lora, path(tmp_path, to), to)))


def test_comfy_lora_down_up_keys_without_alpha_read_the_same(tmp_path):
    lora = random_lora(SHAPES, rank=4)  # no alpha: scale 1 everywhere
    tensors, header = lora_state_dict(lora, 'comfy')
    tensors = {k.replace('lora_A', 'lora_down').replace('lora_B', 'lora_up'): v for k, v in tensors.items()}
    assert not any(k.endswith('.alpha') for k in tensors)
    save_file(tensors, tmp_path/'down_up.safetensors', metadata=header)
    back = read_lora(tmp_path/'down_up.safetensors')
    assert {m.alpha for m in back.modules.values()} == {None}
    assert_same(lora, back)


def test_trained_adapter_is_what_every_file_applies(tmp_path):
    "What the trainer extracts from a peft-adapted transformer acts like the adapter, in every family."
    torch.manual_seed(0)
    base = WanTransformer3DModel(**TINY_TRANSFORMER)
    adapted = WanTransformer3DModel(**TINY_TRANSFORMER)
    adapted.load_state_dict(base.state_dict())
    adapted.add_adapter(LoraConfig(r=4, lora_alpha=2, use_rslora=True, rank_pattern={'ffn.net.2': 2}, target_modules=TARGETS))
    with torch.no_grad():
        for n, p in adapted.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.1)
    lora = lora_from_peft_model(adapted, metadata={'wan_nb.run': 'abc'})
    x = dict(hidden_states=torch.randn(1, 16, 2, 4, 4), timestep=torch.tensor([300.]), encoder_hidden_states=torch.randn(1, 8, 32),
             return_dict=False)
    with torch.no_grad(): want = adapted(**x)[0]
    for to in FORMATS:
        merged = WanTransformer3DModel(**TINY_TRANSFORMER)
        merged.load_state_dict(base.state_dict())
        merge_lora(merged, read_lora(write_lora(lora, path(tmp_path, to), to)))
        with torch.no_grad(): torch.testing.assert_close(merged(**x)[0], want, rtol=0, atol=1e-5)


def test_peft_directories_both_ways(tmp_path):
    "A directory PeftModel.save_pretrained wrote reads as the same LoRA; ours loads in PeftModel.from_pretrained."
    torch.manual_seed(0)
    model = get_peft_model(WanTransformer3DModel(**TINY_TRANSFORMER), LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS,
                                                                                 init_lora_weights='gaussian'))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.normal_()
    model.save_pretrained(tmp_path/'theirs')
    theirs = read_lora(tmp_path/'theirs')
    assert_same(lora_from_peft_model(model), theirs)
    write_lora(theirs, tmp_path/'ours', 'peft')
    torch.manual_seed(0)
    loaded = PeftModel.from_pretrained(WanTransformer3DModel(**TINY_TRANSFORMER), tmp_path/'ours')
    x = dict(hidden_states=torch.randn(1, 16, 2, 4, 4), timestep=torch.tensor([300.]), encoder_hidden_states=torch.randn(1, 8, 32),
             return_dict=False)
    with torch.no_grad(): torch.testing.assert_close(loaded(**x)[0], model(**x)[0], rtol=0, atol=1e-6)
