"""Previews with a second LoRA stacked on them (`preview_extra_lora`, e.g. an accelerator LoRA) change nothing in
training: the LoRA trained with previews before and after every step is bit-identical to one trained without, and a
LoRA made for another model stops the run before its first step."""
import av
import pytest
from safetensors.torch import load_file

from wan_nb.lora_io import random_lora, wan_shapes, write_lora
from wan_nb.tracking import training_callbacks
from wan_nb.train import Trainer, load_run_config


def config(model, dataset, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=4,
                                          learning_rate=3e-3, max_train_steps=2, checkpoint_every_n_steps=None,
                                          validate_every_n_steps=None, timestep_sampling='uniform', **kw))


def test_extra_lora_previews_leave_the_trained_lora_bit_identical(tiny_model_dir, images_dataset, tmp_path):
    write_lora(random_lora(wan_shapes(blocks=4, dim=64, ffn_dim=128), rank=2, alpha=2.0, seed=7), tmp_path/'fast.safetensors')
    (tmp_path/'prompts.txt').write_text('a red circle rises --w 32 --h 32 --f 5 --s 2 --l 1\n')
    plain = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'plain', sample_prompts=None), progress=False).train()
    cfg = config(tiny_model_dir, images_dataset, tmp_path/'previewed', sample_prompts=str(tmp_path/'prompts.txt'),
                 sample_every_n_steps=1, sample_at_first=True, sample_fps=8,
                 preview_extra_lora=f"{tmp_path/'fast.safetensors'}:0.5")
    (previews,) = training_callbacks(cfg, tracking=False)
    previewed = Trainer(cfg, [previews], progress=False).train()
    a, b = load_file(plain/'lora.safetensors'), load_file(previewed/'lora.safetensors')
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert [step for step, _, _ in previews.written] == [0, 1, 2] and previews.extra_strength == 0.5
    with av.open(str(previews.written[-1][1])) as c: assert c.streams.video[0].average_rate == 8


def test_an_extra_lora_for_another_model_stops_the_run_before_its_first_step(tiny_model_dir, images_dataset, tmp_path):
    write_lora(random_lora(wan_shapes(blocks=4, dim=32, ffn_dim=64), rank=2, seed=1), tmp_path/'narrow.safetensors')
    (tmp_path/'prompts.txt').write_text('a red circle rises --w 32 --h 32 --f 5 --s 2\n')
    cfg = config(tiny_model_dir, images_dataset, tmp_path/'run', sample_prompts=str(tmp_path/'prompts.txt'),
                 sample_every_n_steps=1, preview_extra_lora=str(tmp_path/'narrow.safetensors'))
    with pytest.raises(ValueError, match=r'narrow.safetensors: layer blocks.0.attn1.to_q is \(64, 64\) in the model '
                                         r'but \(32, 32\) in the LoRA'):
        Trainer(cfg, training_callbacks(cfg, tracking=False), progress=False).train()
    assert not (tmp_path/'run'/'events.jsonl').is_file() or not (tmp_path/'run'/'events.jsonl').read_text()
    with pytest.raises(FileNotFoundError, match=r"preview_extra_lora = '/\S+/missing.safetensors:0.5': no such LoRA file"):
        training_callbacks(config(tiny_model_dir, images_dataset, tmp_path/'x', sample_prompts=str(tmp_path/'prompts.txt'),
                                  sample_every_n_steps=1, preview_extra_lora='missing.safetensors:0.5'), tracking=False)
