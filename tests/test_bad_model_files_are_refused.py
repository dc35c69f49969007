"Bad model input is refused before anything loads, with a message naming the file and the fix."
import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel

from model_files import header_only_safetensors, release_shapes
from wan_nb.models import ModelFileError, ModelSource, identify_model, load_wan, write_comfy_files, write_official_layout


@pytest.fixture(scope='module')
def comfy(tiny_model_dir, tmp_path_factory):
    return write_comfy_files(tiny_model_dir, tmp_path_factory.mktemp('comfy')/'bf16')


def refused(source, *fragments, call=identify_model):
    with pytest.raises(ModelFileError) as e: call(source)
    for frag in fragments: assert frag in str(e.value), (frag, str(e.value))
    return str(e.value)


def test_a_lora_or_another_models_file_is_not_a_wan_transformer(tmp_path):
    lora = tmp_path/'my_style_lora.safetensors'
    save_file({'diffusion_model.blocks.0.self_attn.q.lora_A.weight': torch.zeros(4, 64),
               'diffusion_model.blocks.0.self_attn.q.lora_B.weight': torch.zeros(64, 4)}, lora)
    refused(lora, str(lora), 'LoRA file', 'base Wan transformer')
    unet = header_only_safetensors(tmp_path/'sdxl.safetensors', {
        'model.diffusion_model.input_blocks.0.0.weight': (320, 4, 3, 3),
        'model.diffusion_model.middle_block.1.proj_in.weight': (1280, 1280),
        'model.diffusion_model.out.2.weight': (4, 320, 3, 3)})
    refused(unet, str(unet), 'not a Wan transformer', 'SDXL')


def test_truncated_files_and_missing_shards(comfy, tiny_model_dir, tmp_path):
    cut = tmp_path/'wan_t2v_bf16.safetensors'
    cut.write_bytes(comfy.model.read_bytes()[:-1000])
    refused(cut, str(cut), 'truncated', 'download the file again')
    official = write_official_layout(tiny_model_dir, tmp_path/'official', shards=3)
    (official/'diffusion_pytorch_model-00002-of-00003.safetensors').unlink()
    refused(official, 'diffusion_pytorch_model-00002-of-00003.safetensors', 'missing')
    (official/'diffusion_pytorch_model.safetensors.index.json').unlink()
    refused(official, str(official), 'shard(s) [2] of 3 are missing')


def test_pickled_code_is_never_run(comfy, tmp_path):
    class Evil:
        def __reduce__(self): return (exec, ("open('/tmp/wan_nb_pwned', 'w')",))
    bad = tmp_path/'Wan2.1_VAE.pth'
    torch.save({'decoder.conv1.weight': Evil()}, bad)
    refused(ModelSource(comfy.model, vae=bad), str(bad), 'weights_only=True', 'safetensors')
    torch.save([torch.zeros(2)], tmp_path/'list.pth')
    refused(ModelSource(comfy.model, vae=tmp_path/'list.pth'), 'not a plain {name: tensor} dict')


def test_a_vae_of_the_wrong_family(comfy, tmp_path):
    vae22 = header_only_safetensors(tmp_path/'wan2.2_vae.safetensors', {
        'encoder.conv1.weight': (160, 12, 3, 3, 3), 'conv1.weight': (96, 96, 1, 1, 1), 'conv2.weight': (48, 48, 1, 1, 1),
        'decoder.conv1.weight': (1024, 48, 3, 3, 3)})
    refused(ModelSource(comfy.model, vae=vae22), str(vae22), "Wan 2.2's VAE (48 latent channels)", 'wan_2.1_vae')
    refused(ModelSource(comfy.model, vae=comfy.text_encoder), str(comfy.text_encoder), 'not a Wan VAE')


def test_text_encoders_that_are_not_umt5_or_not_xxl(comfy, tmp_path):
    t5 = T5EncoderModel(T5Config(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                 feed_forward_proj='gated-gelu'))
    save_file({k: v.contiguous() for k, v in t5.state_dict().items() if k != 'encoder.embed_tokens.weight'},
              tmp_path/'t5xxl_fp16.safetensors')
    refused(ModelSource(comfy.model, text_encoder=tmp_path/'t5xxl_fp16.safetensors'), 't5xxl_fp16.safetensors',
            'not a UMT5 encoder')
    real = header_only_safetensors(tmp_path/'wan2.1_t2v_1.3B_bf16.safetensors', release_shapes('wan2.1-t2v-1.3b', 1))
    refused(ModelSource(real, text_encoder=comfy.text_encoder), str(comfy.text_encoder), "'d_model': (32, 4096)",
            'umt5_xxl_fp16.safetensors')


def test_wan22_experts_and_wan21_models_are_not_mistaken(tmp_path):
    w21 = header_only_safetensors(tmp_path/'i2v_21.safetensors', release_shapes('wan2.1-i2v-14b', 1))
    w22 = header_only_safetensors(tmp_path/'i2v_22_high.safetensors', release_shapes('wan2.2-i2v-a14b', 1))
    refused(ModelSource(w22, model_type='wan2.1-i2v-14b'), str(w22), 'contradicts the weights', 'wan2.2-i2v-a14b',
            'image embedder')
    refused(ModelSource(w21, model_type='wan2.2-i2v-a14b'), 'contradicts the weights', 'wan2.1-i2v-14b')
    refused(ModelSource(w21, model_2=w21), 'two transformers were given (model_2)', 'which has one')
    refused(ModelSource(w22, model_2=header_only_safetensors(tmp_path/'t2v.safetensors',
                                                             release_shapes('wan2.1-t2v-14b', 1))),
            "second expert's shapes differ")


def test_model_type_contradicting_the_weights_and_unknown_types(comfy):
    refused(ModelSource(comfy.model, model_type='wan2.1-t2v-1.3b'), str(comfy.model), 'contradicts the weights',
            'custom-size')
    refused(ModelSource(comfy.model, model_type='wan3'), "model_type = 'wan3' is not a Wan variant")
    assert identify_model(ModelSource(comfy.model, model_type='custom')).variant == 'custom'


def test_comfy_quant_formats_that_cannot_be_dequantised_exactly(tiny_model_dir, tmp_path):
    src = write_comfy_files(tiny_model_dir, tmp_path/'q', dtype='comfy_quant')
    from safetensors.torch import load_file
    sd = load_file(src.model)
    blob = json.dumps({'format': 'nvfp4', 'group_size': 16}).encode()
    sd['model.diffusion_model.blocks.0.ffn.0.comfy_quant'] = torch.tensor(list(blob), dtype=torch.uint8)
    save_file(sd, src.model)
    refused(src, str(src.model), "['nvfp4']", 'comfy_quant', 'bf16')


def test_missing_components_are_named_with_the_fix(comfy):
    refused(ModelSource(comfy.model), 'vae = ...', call=lambda s: load_wan(s, ('transformer', 'vae')))
    assert load_wan(ModelSource(comfy.model), ('transformer',)).transformer is not None
