"""Image-to-video previews start from the prompt line's `--i` image exactly as diffusers' WanImageToVideoPipeline does,
and an I2V prompt file without one (or with a missing image) is refused up front, naming the line."""
import types

import diffusers, transformers
import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from PIL import Image

import wan_nb.sample as sample
from wan_nb.models import load_wan, make_tiny_model
from wan_nb.sample import WAN_NEGATIVE_PROMPT, PreviewCallback, PromptFileError, PromptSpec, generate_preview, parse_prompt_file

diffusers.utils.logging.disable_progress_bar(); transformers.utils.logging.disable_progress_bar()
SIZE = dict(width=64, height=32, frames=5, seed=3, steps=2, guidance=2.0)  # CFG on: the negative prompt runs too


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('i2v-models')
    yield {v: make_tiny_model(root/v, variant=v) for v in ('i2v-2.1', 'i2v-2.2', 'ti2v-5b')}
    sample.preview_components.cache_clear(); sample.base_expert.cache_clear()


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    "Two start images: a red square on white, and a horizontal gradient."
    root = tmp_path_factory.mktemp('i2v-images')
    square = np.full((32, 64, 3), 255, np.uint8); square[8:24, 8:24] = (255, 0, 0)
    gradient = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 32, 0).repeat(3, 2)
    Image.fromarray(square).save(root/'square.png'); Image.fromarray(gradient).save(root/'gradient.png')
    return root


def experts(model):
    wan = load_wan(model, components=('transformer', 'transformer_2') if 'i2v-2.2' in model.name else ('transformer',))
    return wan.transformer, wan.transformer_2


def direct(pipeline_class, model, spec):
    "What diffusers' own pipeline, loaded from the folder, gives for `spec`."
    pipe = pipeline_class.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    image = {} if spec.image is None else dict(image=Image.open(spec.image).convert('RGB'))
    negative = WAN_NEGATIVE_PROMPT if spec.negative_prompt is None else spec.negative_prompt  # a line without --n: Wan's
    video = pipe(**image, prompt=spec.prompt, negative_prompt=negative, height=spec.height, width=spec.width,
                 num_frames=spec.frames, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                 generator=torch.Generator().manual_seed(spec.seed), output_type='np').frames[0]
    return torch.from_numpy((video * 255).round().clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize('variant', ['i2v-2.1', 'i2v-2.2'])
def test_preview_equals_wan_image_to_video_pipeline(models, images, variant):
    "Bit for bit (torch.equal): same components, same CPU generator, same image, same size."
    spec = PromptSpec('the square slides to the right', **SIZE, image=str(images/'square.png'))
    high, low = experts(models[variant])
    preview = generate_preview(high, models[variant], spec, transformer_2=low)
    assert preview.shape == (5, 32, 64, 3)
    assert torch.equal(preview, direct(WanImageToVideoPipeline, models[variant], spec))
    if variant == 'i2v-2.2':  # a run training only the low-noise expert: the base high-noise one fills in
        assert torch.equal(generate_preview(None, models[variant], spec, transformer_2=low), preview)


@pytest.mark.parametrize('variant', ['i2v-2.1', 'i2v-2.2'])
def test_another_start_image_gives_another_preview(models, images, variant):
    high, low = experts(models[variant])
    square, gradient = (generate_preview(high, models[variant], PromptSpec('a cat', **SIZE, image=str(images/name)),
                                         transformer_2=low) for name in ('square.png', 'gradient.png'))
    assert not torch.equal(square, gradient)


def test_ti2v_is_image_to_video_with_i_and_text_to_video_without(models, images):
    spec = PromptSpec('a cat', **SIZE, image=str(images/'square.png'))
    high, _ = experts(models['ti2v-5b'])
    with_image = generate_preview(high, models['ti2v-5b'], spec)
    assert torch.equal(with_image, direct(WanImageToVideoPipeline, models['ti2v-5b'], spec))
    text_only = generate_preview(high, models['ti2v-5b'], PromptSpec('a cat', **SIZE))
    assert torch.equal(text_only, direct(WanPipeline, models['ti2v-5b'], PromptSpec('a cat', **SIZE)))
    assert not torch.equal(with_image, text_only)


def test_an_i2v_line_without_i_is_refused_naming_the_line(models, images, tmp_path):
    prompts = tmp_path/'prompts.txt'
    prompts.write_text(f"# previews\na cat --w 64 --h 32 --i {images/'square.png'}\n\na dog --w 64 --h 32\n")
    message = f"{prompts}:4: {models['i2v-2.2']} is an image-to-video model"
    with pytest.raises(PromptFileError, match='Add --i path/to/image.png') as e:
        PreviewCallback(prompts, 10, model=models['i2v-2.2'])  # the job's model known: refused when the callback is made
    assert str(e.value).startswith(message)
    cb = PreviewCallback(prompts, 10)  # made without the model: refused when training begins, before any preview
    high, low = experts(models['i2v-2.2'])
    trainer = types.SimpleNamespace(transformer=high, transformer_2=low, source=models['i2v-2.2'], step=0,
                                    output_dir=tmp_path/'run', device=torch.device('cpu'), is_main_process=True,
                                    emit=lambda *a: pytest.fail('no preview may be written'))
    with pytest.raises(PromptFileError) as e: cb.on_train_begin(trainer)
    assert str(e.value).startswith(message)
    assert not (tmp_path/'run').exists()
    with pytest.raises(PromptFileError, match='Add --i path/to/image.png'):
        generate_preview(high, models['i2v-2.2'], PromptSpec('a dog', **SIZE), transformer_2=low)


def test_a_missing_start_image_is_refused_naming_the_path(tmp_path):
    (tmp_path/'images').mkdir()
    prompts = tmp_path/'prompts.txt'
    prompts.write_text('a cat --w 64 --h 32 --i images/cat.png\n')
    with pytest.raises(PromptFileError) as e: parse_prompt_file(prompts)
    assert str(e.value).startswith(f"{prompts}:1: --i images/cat.png: no such image {tmp_path.resolve()/'images'/'cat.png'}")
    Image.new('RGB', (64, 32)).save(tmp_path/'images'/'cat.png')  # relative to the prompt file, not the current folder
    assert parse_prompt_file(prompts)[0].image == str(tmp_path.resolve()/'images'/'cat.png')
