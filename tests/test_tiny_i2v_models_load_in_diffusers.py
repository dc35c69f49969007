"The tiny image-to-video Wans are real diffusers pipelines: each loads, generates from an image, is reproducible."
import pytest
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from PIL import Image

from wan_nb.models import component_identity, identify_model, load_wan, make_tiny_model, wan_pipeline

PROMPT = 'a red circle moves from left to right over a blue gradient background'
# variant -> task, experts, boundary_ratio, CLIP width (Wan 2.1 I2V only)
EXPECTED = {'i2v-2.1': ('i2v', 1, None, 32), 'i2v-2.2': ('i2v', 2, 0.9, None), 'ti2v-5b': ('ti2v', 1, None, None)}


@pytest.fixture(scope='module')
def variant_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny-i2v')
    return {v: make_tiny_model(root/v, variant=v) for v in EXPECTED}


@pytest.fixture(scope='module')
def image():
    "A 48x80 still: wider than the generated clip, so the pipelines resize it (and CLIP centre-crops it)."
    return Image.fromarray((torch.rand(48, 80, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy())


def generate(pipe, image=None, seed=0):
    pipe.set_progress_bar_config(disable=True)
    kw = dict(image=image) if image is not None else {}
    return pipe(prompt=PROMPT, num_frames=5, height=64, width=64, num_inference_steps=2,
                generator=torch.Generator().manual_seed(seed), output_type='pt', **kw).frames


def files(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('variant', EXPECTED)
def test_diffusers_loads_each_variant_and_generates_from_an_image(variant, variant_dirs, image):
    plain = WanImageToVideoPipeline.from_pretrained(variant_dirs[variant])
    video = generate(plain, image)
    assert video.shape == (1, 5, 3, 64, 64) and torch.isfinite(video).all()
    ours = wan_pipeline(load_wan(variant_dirs[variant]), image=True)
    assert type(ours) is WanImageToVideoPipeline
    assert torch.equal(generate(ours, image), video)


def test_ti2v_loads_as_the_hubs_text_to_video_pipeline_too(variant_dirs):
    plain = WanPipeline.from_pretrained(variant_dirs['ti2v-5b'])
    assert plain.config.expand_timesteps and plain.vae.config.z_dim == 48
    ours = wan_pipeline(load_wan(variant_dirs['ti2v-5b']))
    assert type(ours) is WanPipeline and ours.config.expand_timesteps
    assert torch.equal(generate(ours), generate(plain))


def test_i2v_21_pipeline_encodes_the_image_with_the_tiny_clip(variant_dirs, image):
    pipe = WanImageToVideoPipeline.from_pretrained(variant_dirs['i2v-2.1'])
    assert pipe.encode_image(image, 'cpu').shape == (1, 17, 32)  # 4x4 patches + the class token, 32 wide
    assert pipe.image_encoder.config.hidden_size == pipe.transformer.config.image_dim
    assert len(component_identity(variant_dirs['i2v-2.1'], 'image_encoder', 'image_processor')) == 16


def test_each_variant_is_the_same_bytes_twice_and_under_3_mb(variant_dirs, tiny_model_dir, tmp_path):
    for variant, d in variant_dirs.items():
        assert files(make_tiny_model(tmp_path/variant, variant=variant)) == files(d), variant
        assert sum(p.stat().st_size for p in d.rglob('*') if p.is_file()) < 3_000_000, variant
    assert files(make_tiny_model(tmp_path/'t2v', variant='t2v')) == files(tiny_model_dir)
    weights = lambda name: (variant_dirs['i2v-2.2']/name/'diffusion_pytorch_model.safetensors').read_bytes()
    assert weights('transformer') != weights('transformer_2')  # two experts, not one written twice


@pytest.mark.parametrize('variant', EXPECTED)
def test_identify_model_tells_task_experts_and_boundary(variant, variant_dirs):
    info = identify_model(variant_dirs[variant])
    assert (info.task, info.experts, info.boundary_ratio, info.image_dim) == EXPECTED[variant]
    assert info.missing == [] and info.format == 'diffusers'
    assert load_wan(variant_dirs[variant], components=('transformer',)).task == info.task
