"""The trainer feeds an image-to-video transformer exactly what diffusers' pipelines feed it at the same noise
level: for Wan 2.1 / 2.2 I2V the noisy latents, the first-frame mask and the cached image latents `y` (and Wan 2.1's
CLIP features); for TI2V 5B the clean first-frame latent in frame 0 with timestep 0 on its tokens. A LoRA trained
on anything else learns a task the model never performs at inference ("my I2V LoRA does nothing")."""
import pytest
import torch
from diffusers import WanImageToVideoPipeline
from PIL import Image

from wan_nb.cache import build_cache, model_cache_index
from wan_nb.media import read_frames, source_frame_indices
from wan_nb.models import make_tiny_model, model_task
from wan_nb.plan import ProbeCache, plan_dataset
from wan_nb.train import load_batch, model_inputs

DATASET = '''[[datasets]]
video_directory = "{videos}"
cache_directory = "{cache}"
resolution = [64, 64]
target_frames = [5]
'''


def first_call(pipe, **kw) -> dict:
    "The keyword arguments of the pipeline's first transformer call."
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a, k: seen.append(k), with_kwargs=True)
    try: pipe(**kw, num_inference_steps=2, guidance_scale=1.0, output_type='latent',
              generator=torch.Generator().manual_seed(0))
    finally: hook.remove()
    return seen[0]


@pytest.mark.parametrize('variant', ['i2v-2.1', 'i2v-2.2', 'ti2v-5b'])
def test_trainer_input_equals_the_pipelines(variant, demo_dir, tmp_path):
    model = make_tiny_model(tmp_path/variant, variant=variant)
    videos = tmp_path/'videos'
    videos.mkdir()
    clip = sorted((demo_dir/'videos').glob('*.mp4'))[0]
    for f in (clip, clip.with_suffix('.txt')): (videos/f.name).symlink_to(f)
    (tmp_path/'dataset.toml').write_text(DATASET.format(videos=videos, cache=tmp_path/'cache'))
    plan = plan_dataset(tmp_path/'dataset.toml', progress=False)
    assert not build_cache(plan, model, progress=False).failures
    entry = model_cache_index(plan, model).entries[0]
    item, batch = entry.item, load_batch([entry])
    first = source_frame_indices(ProbeCache().probe(item.path), None, None)[item.start]
    image = Image.fromarray(read_frames(item.path, [first], (item.width, item.height))[0].numpy())

    pipe = WanImageToVideoPipeline.from_pretrained(model)
    fed = first_call(pipe, image=image, prompt=item.caption, height=item.height, width=item.width,
                     num_frames=item.frames)
    hidden, timestep = fed['hidden_states'], fed['timestep']
    t = timestep.max().view(1) / 1000
    config = pipe.transformer.config
    ours = model_inputs(model_task(config), hidden[:, :config.out_channels], t, batch)
    assert ours['hidden_states'].shape == hidden.shape
    torch.testing.assert_close(ours['hidden_states'], hidden, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours['timestep'], timestep.float(), rtol=1e-6, atol=1e-4)  # t / 1000 * 1000
    torch.testing.assert_close(ours['encoder_hidden_states'], fed['encoder_hidden_states'], rtol=1e-5, atol=1e-5)
    image_features = fed.get('encoder_hidden_states_image')
    assert (image_features is None) == ('encoder_hidden_states_image' not in ours)
    if image_features is not None:
        torch.testing.assert_close(ours['encoder_hidden_states_image'], image_features, rtol=1e-5, atol=1e-5)
