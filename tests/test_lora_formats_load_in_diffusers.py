"Our ComfyUI, musubi and diffusers LoRA files load in diffusers' WanPipeline and act exactly as adding their deltas."
import copy, json

import pytest
import torch
from diffusers.loaders.lora_conversion_utils import _convert_musubi_wan_lora_to_diffusers

from wan_nb.lora_io import (PADDED_KEY, T2V_MODULES, Lora, lora_keys, lora_state_dict, merge_lora, random_lora, read_lora,
                            wan_shapes, write_lora)
from wan_nb.models import TINY_TRANSFORMER, load_wan, wan_pipeline

BLOCKS = TINY_TRANSFORMER['num_layers']
SHAPES = wan_shapes(BLOCKS, TINY_TRANSFORMER['num_attention_heads'] * TINY_TRANSFORMER['attention_head_dim'], TINY_TRANSFORMER['ffn_dim'])


@pytest.fixture(scope='module')
def pipe(tiny_model_dir):
    return wan_pipeline(load_wan(tiny_model_dir))


@pytest.fixture(scope='module')
def base(pipe):
    return copy.deepcopy(pipe.transformer)


def small_lora(alpha=3.0, seed=0) -> Lora:
    lora = random_lora(SHAPES, rank=4, alpha=alpha, seed=seed, metadata={'ss_network_dim': '4'})
    for m in lora.modules.values(): m.A.mul_(0.05); m.B.mul_(0.05)
    return lora


def partial(lora: Lora) -> Lora:
    "Attention of blocks 1-2 and one ffn layer: not every layer of every block."
    keep = [n for n in lora.modules if (n.startswith(('blocks.1.', 'blocks.2.')) and '.attn' in n) or n == 'blocks.2.ffn.net.2']
    return Lora({n: lora.modules[n] for n in keep}, dict(lora.metadata))


def forward(transformer):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, 16, 2, 4, 4, generator=g), timestep=torch.tensor([500.]),
                           encoder_hidden_states=torch.randn(1, 8, 32, generator=g), return_dict=False)[0]


def test_comfy_file_uses_exactly_the_original_wan_module_names(tmp_path, base):
    tensors, _ = lora_state_dict(read_lora(write_lora(small_lora(), tmp_path/'l.safetensors', 'comfy')), 'comfy')
    wan_layers = ['self_attn.q', 'self_attn.k', 'self_attn.v', 'self_attn.o', 'cross_attn.q', 'cross_attn.k', 'cross_attn.v',
                  'cross_attn.o', 'ffn.0', 'ffn.2']
    assert list(T2V_MODULES) == wan_layers
    expected = {f'diffusion_model.blocks.{b}.{l}.{part}' for b in range(BLOCKS) for l in wan_layers
                for part in ('lora_A.weight', 'lora_B.weight', 'alpha')}
    assert set(tensors) == expected
    for name, (out, inp) in SHAPES.items():  # every diffusers name is a real layer of the right shape
        assert tuple(base.get_submodule(name).weight.shape) == (out, inp)


@pytest.mark.parametrize('to', ['comfy', 'musubi', 'diffusers'])
@pytest.mark.parametrize('which', ['all layers', 'some layers', 'no alpha'])
def test_diffusers_loads_our_file_and_matches_the_deltas(pipe, base, tmp_path, to, which):
    lora = {'all layers': small_lora(), 'some layers': partial(small_lora()), 'no alpha': small_lora(alpha=None)}[which]
    f = write_lora(lora, tmp_path/f'{to}.safetensors', to)
    want = forward(merge_lora(copy.deepcopy(base), lora))
    pipe.load_lora_weights(str(f), adapter_name='test')
    try: got = forward(pipe.transformer)
    finally: pipe.delete_adapters('test')
    assert (want - forward(base)).abs().max() > 1e-3  # the LoRA does something
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


def test_strength_in_diffusers_is_strength_in_the_deltas(pipe, base, tmp_path):
    lora = small_lora()
    f = write_lora(lora, tmp_path/'slider.safetensors', 'comfy')
    pipe.load_lora_weights(str(f), adapter_name='slider')
    try:
        pipe.set_adapters(['slider'], [-2.5])
        got = forward(pipe.transformer)
    finally: pipe.delete_adapters('slider')
    torch.testing.assert_close(got, forward(merge_lora(copy.deepcopy(base), lora, strength=-2.5)), rtol=0, atol=2e-6)


def test_musubi_files_are_padded_because_diffusers_needs_every_layer(tmp_path):
    lora = partial(small_lora())
    tensors, header = lora_state_dict(lora, 'musubi')
    padded = json.loads(header[PADDED_KEY])
    assert len(padded) == 3 * len(T2V_MODULES) - len(lora.modules)  # blocks 0..2, all layers
    _convert_musubi_wan_lora_to_diffusers(dict(tensors))  # accepted as written
    padding_keys = {k for n in padded for k in lora_keys(n, 'musubi')}
    unpadded = {k: v for k, v in tensors.items() if k not in padding_keys}
    with pytest.raises(KeyError):  # the rule: diffusers' musubi converter pops every layer of blocks 0..N-1
        _convert_musubi_wan_lora_to_diffusers(unpadded)
    back = read_lora(write_lora(lora, tmp_path/'m.safetensors', 'musubi'))
    assert sorted(back.modules) == sorted(lora.modules) and PADDED_KEY not in back.metadata

