"Previews during training: reproducible from the seed, LoRA included, and invisible to training (RNG stream, module modes, gradients)."
import dataclasses, types

import av
import diffusers, transformers
import numpy as np
import peft
import pytest
import torch
from PIL import Image

import wan_nb.sample as sample
from wan_nb.models import TINY_TRANSFORMER, build_tiny_wan, load_wan
from wan_nb.sample import PreviewCallback, PromptSpec, generate_preview, write_preview

diffusers.utils.logging.disable_progress_bar(); transformers.utils.logging.disable_progress_bar()
SPEC = PromptSpec('a red circle rises over a blue gradient background', width=32, height=32, frames=9, seed=3, steps=3, guidance=2.0)


@pytest.fixture
def transformer(tiny_model_dir):
    "A fresh copy of the tiny transformer, in train mode as during training."
    return load_wan(tiny_model_dir, components=('transformer',)).transformer.train()


def fake_trainer(transformer, model_dir, output_dir, events, is_main_process=True):
    "What PreviewCallback reads from a Trainer, and an `emit` that records the events."
    return types.SimpleNamespace(transformer=transformer, transformer_2=None, source=model_dir, output_dir=output_dir,
                                 step=0, device=torch.device('cpu'), is_main_process=is_main_process,
                                 emit=lambda name, *args: events.append((name, *args)))


def add_random_lora(model):
    model.add_adapter(peft.LoraConfig(r=4, lora_alpha=4, target_modules=['to_q', 'to_k', 'to_v', 'to_out.0'],
                                      lora_dropout=0.5, init_lora_weights=False))


def test_same_seed_same_preview(transformer, tiny_model_dir):
    a = generate_preview(transformer, tiny_model_dir, SPEC)
    assert a.shape == (9, 32, 32, 3) and a.dtype == torch.uint8
    assert torch.equal(generate_preview(transformer, tiny_model_dir, SPEC), a)
    assert not torch.equal(generate_preview(transformer, tiny_model_dir, dataclasses.replace(SPEC, seed=4)), a)
    assert not torch.equal(generate_preview(transformer, tiny_model_dir, dataclasses.replace(SPEC, flow_shift=8.0)), a)


def test_non_square_previews_are_height_by_width(transformer, tiny_model_dir):
    assert generate_preview(transformer, tiny_model_dir, dataclasses.replace(SPEC, width=48, frames=5)).shape == (5, 32, 48, 3)


def test_training_rng_stream_is_unchanged(transformer, tiny_model_dir):
    # a component that draws from the global RNG during the preview (as dropout or a sampler could)
    def draw(module, args): torch.randn(4)
    transformer.register_forward_pre_hook(draw)
    torch.manual_seed(0); torch.rand(5); without = torch.rand(10)
    torch.manual_seed(0); torch.rand(5)
    generate_preview(transformer, tiny_model_dir, SPEC)
    assert torch.equal(torch.rand(10), without)


def test_eval_mode_and_no_grad_inside_modes_restored_after(transformer, tiny_model_dir):
    add_random_lora(transformer)  # with dropout 0.5: train mode inside the preview would make it random
    transformer.blocks[1].eval()  # a mixed state must come back exactly
    before = {n: m.training for n, m in transformer.named_modules()}
    seen = []
    transformer.register_forward_pre_hook(lambda m, args: seen.append((m.training, m.blocks[0].attn1.to_q.training, torch.is_grad_enabled())))
    a = generate_preview(transformer, tiny_model_dir, SPEC)
    assert seen and set(seen) == {(False, False, False)}
    assert {n: m.training for n, m in transformer.named_modules()} == before
    assert all(p.grad is None for p in transformer.parameters())
    assert torch.equal(generate_preview(transformer, tiny_model_dir, SPEC), a)


def test_lora_changes_preview_and_zero_lora_gives_base(transformer, tiny_model_dir):
    base = generate_preview(transformer, tiny_model_dir, SPEC)
    add_random_lora(transformer)
    assert not torch.equal(generate_preview(transformer, tiny_model_dir, SPEC), base)
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if 'lora_B' in name: p.zero_()
    assert torch.equal(generate_preview(transformer, tiny_model_dir, SPEC), base)


def test_components_are_loaded_once(transformer, tiny_model_dir, monkeypatch):
    sample.preview_components.cache_clear()
    calls = []
    real = sample.load_wan
    monkeypatch.setattr(sample, 'load_wan', lambda *a, **k: calls.append(k.get('components')) or real(*a, **k))
    for seed in range(3): generate_preview(transformer, tiny_model_dir, dataclasses.replace(SPEC, seed=seed))
    assert calls == [('vae', 'text_encoder', 'tokenizer', 'scheduler', 'image_encoder', 'image_processor')]  # None when absent
    sample.preview_components.cache_clear()


def test_wan22_uses_the_base_low_noise_expert(tmp_path):
    "A two-expert model: without a trained transformer_2 the base one from disk runs the low-noise steps."
    pipe = build_tiny_wan(0)
    torch.manual_seed(1)
    low = diffusers.WanTransformer3DModel(**TINY_TRANSFORMER)
    diffusers.WanPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae, scheduler=pipe.scheduler,
                          transformer=pipe.transformer, transformer_2=low, boundary_ratio=0.875).save_pretrained(tmp_path/'wan22')
    wan = load_wan(tmp_path/'wan22', components=('transformer', 'transformer_2'))
    spec = dataclasses.replace(SPEC, steps=4)  # timesteps 999, 900 (high-noise expert), 750, 500 (low-noise expert)
    own = generate_preview(wan.transformer, tmp_path/'wan22', spec)
    assert torch.equal(generate_preview(wan.transformer, tmp_path/'wan22', spec, transformer_2=wan.transformer_2), own)
    torch.manual_seed(2)
    other = diffusers.WanTransformer3DModel(**TINY_TRANSFORMER).eval()
    assert not torch.equal(generate_preview(wan.transformer, tmp_path/'wan22', spec, transformer_2=other), own)
    sample.base_expert.cache_clear()


def test_mp4_decodes_to_every_frame_and_png_strip(transformer, tiny_model_dir, tmp_path):
    frames = generate_preview(transformer, tiny_model_dir, dataclasses.replace(SPEC, width=48, frames=17))
    mp4, png = write_preview(frames, tmp_path/'p'/'a.mp4')
    with av.open(str(mp4)) as c:
        decoded = [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]
        assert c.streams.video[0].codec_context.name == 'h264'
    assert len(decoded) == 17 and decoded[0].shape == (32, 48, 3)
    assert np.abs(decoded[8].astype(int) - frames[8].numpy()).mean() < 8  # lossy, but the same picture
    assert Image.open(png).size == (8 * 48, 32)
    assert sorted(p.name for p in (tmp_path/'p').iterdir()) == ['a.mp4', 'a.png']  # no temporary files left


def test_callback_writes_at_step_zero_and_every_n(transformer, tiny_model_dir, tmp_path):
    (tmp_path/'prompts.txt').write_text('# previews\na red circle rises --w 32 --h 32 --f 9 --s 2 --l 1\n\n'
                                        'a blue square falls --w 32 --h 16 --f 5 --s 2 --d 9\n')
    events = []
    trainer = fake_trainer(transformer, tiny_model_dir, tmp_path/'run', events)
    cb = PreviewCallback(tmp_path/'prompts.txt', every_n_steps=3, at_first=True)
    cb.on_train_begin(trainer)
    for step in range(1, 8):
        trainer.step = step
        cb.on_step_end(trainer, types.SimpleNamespace(step=step))
        if step == 6: cb.on_checkpoint(trainer, tmp_path/'run'/'ckpt')
    cb.on_train_end(trainer, tmp_path/'run'/'final')
    assert [s for s, _, _ in cb.written] == [0, 0, 3, 3, 6, 6]
    assert [(name, step) for name, _, step in events] == [('preview', 0), ('preview', 3), ('preview', 6)]
    assert [f for _, files, _ in events for f in files] == [f for _, mp4, png in cb.written for f in (mp4, png)]
    for step, mp4, png in cb.written:
        assert mp4.parent == tmp_path/'run'/'previews'/f'step_{step:06d}' and mp4.is_file() and png == mp4.with_suffix('.png')
    assert cb.written[1][1].name == '01_a-blue-square-falls.mp4'
    with av.open(str(cb.written[1][1])) as c: assert sum(1 for _ in c.decode(video=0)) == 5
    # the same step and seed give the same preview whenever it is made
    first = generate_preview(transformer, tiny_model_dir, cb.specs[0])
    with av.open(str(cb.written[4][1])) as c: again = np.stack([f.to_ndarray(format='rgb24') for f in c.decode(video=0)])
    assert np.abs(again.astype(int) - first.numpy()).mean() < 8


def test_callback_out_dir_and_other_processes(transformer, tiny_model_dir, tmp_path):
    (tmp_path/'prompts.txt').write_text('a cat --w 16 --h 16 --f 1 --s 1\n')
    events = []
    trainer = fake_trainer(transformer, tiny_model_dir, tmp_path/'run', events, is_main_process=False)
    cb = PreviewCallback(tmp_path/'prompts.txt', every_n_steps=1, out_dir=tmp_path/'elsewhere')
    cb.on_train_begin(trainer); cb.on_step_end(trainer, types.SimpleNamespace(step=1))
    assert cb.written == [] and events == [] and not (tmp_path/'elsewhere').exists()
    trainer.is_main_process = True
    cb.on_step_end(trainer, types.SimpleNamespace(step=1))
    assert [m.relative_to(tmp_path) for _, m, _ in cb.written] == [tmp_path.joinpath('elsewhere/step_000001/00_a-cat.mp4').relative_to(tmp_path)]
    assert not (tmp_path/'run').exists()


def test_callback_refuses_bad_settings_before_training(tmp_path):
    (tmp_path/'p.txt').write_text('a cat --w 32\na dog --s many\n')
    with pytest.raises(ValueError, match=r'p.txt:2: --s .many. is not an integer'): PreviewCallback(tmp_path/'p.txt', 10)
    with pytest.raises(ValueError, match='every_n_steps=0'): PreviewCallback(tmp_path/'p.txt', 0)
