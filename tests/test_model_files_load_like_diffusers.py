"""Every layout users have (official Wan-AI, ComfyUI bf16/fp8/fp8-scaled/comfy_quant) loads to the model the
diffusers folder gives, in the requested dtype; real Wan sizes are identified from shapes alone."""
import json

import pytest
import torch
from diffusers import WanPipeline
from safetensors import safe_open

from model_files import header_only_safetensors, release_shapes
from wan_nb.models import (ModelSource, component_identity, convert_model, identify_model, inspect_model, load_wan,
                           write_comfy_files, write_official_layout)


def out(tf, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, text = torch.randn(1, 16, 3, 8, 8, generator=g), torch.randn(1, 7, 32, generator=g)
    with torch.no_grad():
        return tf(x.to(tf.dtype), torch.tensor([500.0]), text.to(tf.dtype), return_dict=False)[0].float()


@pytest.fixture(scope='module')
def reference(tiny_model_dir):
    "The diffusers tiny transformer in bf16, with its fp32-kept modules rounded through bf16 as a bf16 file has them."
    tf = load_wan(tiny_model_dir, ('transformer',), dtype=torch.bfloat16).transformer
    for p in tf.parameters(): p.data = p.data.to(torch.bfloat16).to(p.dtype)
    return tf


@pytest.fixture(scope='module')
def comfy(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp('comfy')
    return {d: write_comfy_files(tiny_model_dir, root/d, dtype=d) for d in ('bf16', 'fp8_e4m3fn', 'fp8_scaled',
                                                                            'comfy_quant')}


def test_comfy_bf16_with_and_without_prefix_equals_diffusers(comfy, reference, tiny_model_dir, tmp_path):
    plain = write_comfy_files(tiny_model_dir, tmp_path/'plain', prefix=False)
    with safe_open(plain.model, 'pt') as f: assert not any(k.startswith('model.') for k in f.keys())
    for src in (comfy['bf16'], plain):
        wan = load_wan(src, ('transformer',), dtype=torch.bfloat16)
        assert torch.equal(out(wan.transformer), out(reference))
        assert {p.dtype for n, p in wan.transformer.named_parameters() if 'attn1' in n} == {torch.bfloat16}
    info = identify_model(comfy['bf16'])
    assert (info.format, info.dtype, info.quantization, info.missing) == ('comfyui', 'bfloat16', None, [])


def test_fp8_loads_within_fp8_rounding_and_exactly_upcast(comfy, reference):
    src = comfy['fp8_e4m3fn']
    assert identify_model(src).quantization == 'fp8_e4m3fn'
    tf = load_wan(src, ('transformer',), dtype=torch.bfloat16).transformer
    with safe_open(src.model, 'pt') as f:
        q = f.get_tensor('model.diffusion_model.blocks.0.self_attn.q.weight')
    assert q.dtype == torch.float8_e4m3fn and torch.equal(tf.blocks[0].attn1.to_q.weight, q.to(torch.bfloat16))
    ref_w = reference.blocks[0].attn1.to_q.weight.float()
    assert (tf.blocks[0].attn1.to_q.weight.float() - ref_w).abs().max() <= ref_w.abs().max() * 2 ** -3
    assert (out(tf) - out(reference)).abs().mean() < 0.1 * out(reference).abs().mean()


@pytest.mark.parametrize('kind, scale_key', [('fp8_scaled', 'scale_weight'), ('comfy_quant', 'weight_scale')])
def test_scaled_fp8_matches_its_dequantised_weights_exactly(comfy, reference, kind, scale_key):
    src = comfy[kind]
    assert identify_model(src).quantization == kind
    tf = load_wan(src, ('transformer',), dtype=torch.bfloat16).transformer
    with safe_open(src.model, 'pt') as f:
        for i, name in enumerate(('self_attn.q', 'cross_attn.o', 'ffn.0')):
            w = f.get_tensor(f'model.diffusion_model.blocks.{i}.{name}.weight')
            s = f.get_tensor(f'model.diffusion_model.blocks.{i}.{name}.{scale_key}')
            mod = {'self_attn.q': tf.blocks[i].attn1.to_q, 'cross_attn.o': tf.blocks[i].attn2.to_out[0],
                   'ffn.0': tf.blocks[i].ffn.net[0].proj}[name]
            assert w.dtype == torch.float8_e4m3fn and s.numel() == 1 and float(s) != 1.0
            assert torch.equal(mod.weight, (w.float() * s.float()).to(torch.bfloat16))
    assert (out(tf) - out(reference)).abs().mean() < 0.1 * out(reference).abs().mean()


def test_official_layout_and_wan22_experts_equal_diffusers(tiny_model_dir, reference, tmp_path):
    one = write_official_layout(tiny_model_dir, tmp_path/'o21')
    wan = load_wan(one, dtype=torch.bfloat16)
    assert torch.equal(out(wan.transformer), out(reference))
    assert wan.text_encoder.dtype == torch.bfloat16 and wan.vae.dtype == torch.float32 and wan.tokenizer is not None
    two = write_official_layout(tiny_model_dir, tmp_path/'o22', experts=2, shards=3)
    info = identify_model(two)
    assert (info.format, info.experts, info.boundary_ratio) == ('official', 2, 0.875)
    wan = load_wan(two, ('transformer', 'transformer_2'), dtype=torch.bfloat16)
    assert torch.equal(out(wan.transformer_2), out(reference)) and wan.boundary_ratio == 0.875


def test_text_encoder_and_vae_from_single_files_match_diffusers(comfy, tiny_model_dir, tmp_path):
    ref = load_wan(tiny_model_dir, ('vae', 'text_encoder', 'tokenizer'))
    for src in (comfy['bf16'], write_official_layout(tiny_model_dir, tmp_path/'o', dtype='fp32')):
        got = load_wan(src, ('vae', 'text_encoder', 'tokenizer'))
        ids = got.tokenizer(['a red circle moves left'], return_tensors='pt').input_ids
        a, b = got.text_encoder(ids).last_hidden_state, ref.text_encoder(ids).last_hidden_state
        assert torch.allclose(a, b, atol=2e-2)  # the files hold the encoder in fp16 / bf16
        x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
        with torch.no_grad():
            assert torch.equal(got.vae.encode(x).latent_dist.mode(), ref.vae.encode(x).latent_dist.mode())
        assert got.vae.config.latents_mean == ref.vae.config.latents_mean


@pytest.mark.parametrize('variant, task, dim, in_channels', [
    ('wan2.1-t2v-1.3b', 't2v', 1536, 16), ('wan2.1-t2v-14b', 't2v', 5120, 16), ('wan2.1-i2v-14b', 'i2v', 5120, 36),
    ('wan2.2-i2v-a14b', 'i2v', 5120, 36), ('wan2.2-ti2v-5b', 'ti2v', 3072, 48)])
def test_real_sizes_identify_from_shapes_with_the_files_block_count(tmp_path, variant, task, dim, in_channels):
    f = header_only_safetensors(tmp_path/'renamed_anything.safetensors', release_shapes(variant, blocks=1))
    info = identify_model(f)
    assert (info.variant, info.task, info.dim, info.blocks, info.in_channels) == (variant, task, dim, 1, in_channels)
    assert (info.format, info.dtype, info.quantization) == ('comfyui', 'bfloat16', None)
    assert info.missing[:1] == (['model_2'] if variant == 'wan2.2-i2v-a14b' else ['vae'])


def test_two_14b_t2v_files_are_wan22_and_a_1_block_file_loads_as_1_block(tmp_path):
    high = header_only_safetensors(tmp_path/'a.safetensors', release_shapes('wan2.1-t2v-14b', blocks=2))
    low = header_only_safetensors(tmp_path/'b.safetensors', release_shapes('wan2.1-t2v-14b', blocks=2))
    info = identify_model(ModelSource(high, model_2=low))
    assert (info.variant, info.experts, info.boundary_ratio, info.blocks) == ('wan2.2-t2v-a14b', 2, 0.875, 2)
    assert identify_model(ModelSource(high, model_type='wan2.2-t2v-a14b')).missing[0] == 'model_2'
    small = header_only_safetensors(tmp_path/'s.safetensors', release_shapes('wan2.1-t2v-1.3b', blocks=1, prefix=''))
    tf = load_wan(small, ('transformer',), dtype=torch.bfloat16).transformer
    assert len(tf.blocks) == 1 and tf.config.num_attention_heads == 12 and tf.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16


def test_inspect_json_convert_and_identity(comfy, tiny_model_dir, tmp_path):
    src = comfy['fp8_scaled']
    report = inspect_model([src.tokenizer, src.model, src.vae])
    assert json.loads(json.dumps(report)) == report
    assert {k: report[k] for k in ('variant', 'task', 'dim', 'blocks', 'in_channels', 'format', 'quantization')} == dict(
        variant='custom', task='t2v', dim=64, blocks=4, in_channels=16, format='comfyui', quantization='fp8_scaled')
    assert report['missing'] == ['text_encoder']
    converted = convert_model([comfy['bf16'].model, comfy['bf16'].vae, comfy['bf16'].text_encoder,
                               comfy['bf16'].tokenizer], tmp_path/'diffusers')
    pipe = WanPipeline.from_pretrained(converted)
    pipe.set_progress_bar_config(disable=True)
    video = pipe('a red circle', num_frames=5, height=32, width=32, num_inference_steps=2, output_type='pt').frames
    assert video.shape == (1, 5, 3, 32, 32)
    # the identity follows the content: the converted vae/ holds the same bytes as the tiny model's, the single file not
    assert component_identity(converted, 'vae') == component_identity(tiny_model_dir, 'vae')
    assert component_identity(comfy['bf16'], 'vae') != component_identity(tiny_model_dir, 'vae')
    assert component_identity(comfy['bf16'], 'transformer') != component_identity(comfy['fp8_scaled'], 'transformer')
