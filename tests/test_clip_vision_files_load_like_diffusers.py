"Wan 2.1 I2V's image encoder loads from ComfyUI's clip_vision_h.safetensors as from a diffusers folder."
import pytest
import torch
from accelerate import init_empty_weights
from transformers import CLIPVisionConfig, CLIPVisionModel

from model_files import header_only_safetensors, release_shapes
from wan_nb.models import (ModelFileError, ModelSource, _shipped_config, component_identity, identify_model,
                           inspect_model, load_wan, make_tiny_model, write_comfy_files)


@pytest.fixture(scope='module')
def i2v21(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp('models')/'tiny-i2v-2.1', variant='i2v-2.1')


@pytest.fixture(scope='module')
def comfy21(i2v21, tmp_path_factory):
    return write_comfy_files(i2v21, tmp_path_factory.mktemp('comfy')/'files')


def penultimate(encoder, pixels):
    with torch.no_grad(): return encoder(pixels, output_hidden_states=True).hidden_states[-2]


def test_comfy_clip_file_gives_the_folders_features_and_processor(i2v21, comfy21):
    assert comfy21.image_encoder.name == 'clip_vision_h.safetensors'
    single = load_wan(comfy21, ('image_encoder', 'image_processor'))
    folder = load_wan(i2v21, ('image_encoder', 'image_processor'))
    for p in folder.image_encoder.parameters(): p.data = p.data.half().float()  # the file stores fp16, as ComfyUI's
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(penultimate(single.image_encoder, pixels), penultimate(folder.image_encoder, pixels))
    assert single.image_processor.to_dict() == folder.image_processor.to_dict()
    as_folder = load_wan(ModelSource(comfy21.model, image_encoder=i2v21/'image_encoder'), ('image_encoder',))
    assert torch.equal(penultimate(as_folder.image_encoder, pixels),
                       penultimate(CLIPVisionModel.from_pretrained(i2v21/'image_encoder'), pixels))
    assert component_identity(comfy21, 'image_encoder', 'image_processor') != \
        component_identity(i2v21, 'image_encoder', 'image_processor')


def test_inspect_sorts_the_clip_file_into_its_role(comfy21):
    without = inspect_model([comfy21.model, comfy21.vae, comfy21.text_encoder, comfy21.tokenizer])
    assert without['missing'] == ['image_encoder'] and without['image_dim'] == 32
    report = inspect_model([comfy21.image_encoder, comfy21.model, comfy21.vae, comfy21.text_encoder, comfy21.tokenizer])
    assert report['missing'] == [] and report['components']['image_encoder'] == str(comfy21.image_encoder)
    with pytest.raises(ModelFileError, match='image_encoder = ...'):
        load_wan(ModelSource(comfy21.model, vae=comfy21.vae, text_encoder=comfy21.text_encoder,
                             tokenizer=comfy21.tokenizer))


def test_vit_h_shapes_match_wan21_i2v_with_the_shipped_config(tmp_path):
    with init_empty_weights():
        vit_h = CLIPVisionModel(CLIPVisionConfig.from_dict(_shipped_config('clip-vit-h-14')))
    shapes = {'vision_model.' + k: tuple(v.shape) for k, v in vit_h.state_dict().items()}
    shapes['visual_projection.weight'] = (1024, 1280)
    clip = header_only_safetensors(tmp_path/'clip_vision_h.safetensors', shapes, dtype=torch.float16)
    w21 = header_only_safetensors(tmp_path/'wan2.1_i2v_480p_14B_bf16.safetensors', release_shapes('wan2.1-i2v-14b', 1))
    info = identify_model(ModelSource(w21, image_encoder=clip))
    assert (info.variant, info.image_dim, 'image_encoder' in info.missing) == ('wan2.1-i2v-14b', 1280, False)
    assert shapes['vision_model.embeddings.position_embedding.weight'] == (257, 1280)  # the 257 CLIP tokens


def test_open_clip_and_mismatched_encoders_are_refused_naming_the_fix(comfy21, i2v21, tmp_path):
    pth = tmp_path/'models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth'
    torch.save({'visual.conv1.weight': torch.zeros(2, 3, 1, 1), 'log_scale': torch.zeros(())}, pth)
    with pytest.raises(ModelFileError, match=f'{pth}.*clip_vision_h.safetensors'):
        identify_model(ModelSource(comfy21.model, image_encoder=pth))
    w21 = header_only_safetensors(tmp_path/'i2v.safetensors', release_shapes('wan2.1-i2v-14b', 1))
    with pytest.raises(ModelFileError, match='a CLIP vision encoder 32 wide.*reads 1280-wide'):
        identify_model(ModelSource(w21, image_encoder=comfy21.image_encoder))
    with pytest.raises(ModelFileError, match='has no image embedder'):
        identify_model(ModelSource(make_tiny_model(tmp_path/'t2v'), image_encoder=i2v21/'image_encoder'))
