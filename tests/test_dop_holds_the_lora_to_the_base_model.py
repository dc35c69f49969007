"""Differential output preservation (dop_multiplier > 0): each step adds the MSE between the LoRA model's and the base
model's predictions on the preservation caption. A new LoRA is its base model (B = 0), so each expert's first DOP term
and its gradient are exactly 0, and the term grows once the LoRA has moved; dop_multiplier 0 gives the losses of a run
without preservation captions; a resumed DOP run continues exactly; a dataset without preservation_class is refused
before anything is cached. On the tiny Wan 2.2 model (two experts) with gradient accumulation."""
import json
import shutil

import pytest
from safetensors.torch import load_file

from wan_nb.models import make_tiny_model
from wan_nb.train import Trainer, TrainingError, load_run_config

STILLS = '''[general]
{extra}
[[datasets]]
image_jsonl_file = "dop_stills.jsonl"
cache_directory = "cache/{cache}"
resolution = [32, 32]
'''
CAPTIONS = {'still_00.png': 'a yellow circle rotates', 'still_02.png': 'a black circle shrinks'}


@pytest.fixture(scope='module')
def wan22(tiny_model_dir, tmp_path_factory):
    "The tiny model with a second transformer as Wan 2.2's low-noise expert (boundary 0.875)."
    d = shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp('dop')/'tiny-wan-2.2')
    shutil.copytree(make_tiny_model(d.parent/'seed1', seed=1)/'transformer', d/'transformer_2')
    index = json.loads((d/'model_index.json').read_text())
    (d/'model_index.json').write_text(json.dumps({**index, 'transformer_2': ['diffusers', 'WanTransformer3DModel'], 'boundary_ratio': 0.875}))
    return d


def config(demo_dir, name: str, extra: str, cache: str = 'dop_stills'):
    (demo_dir/'dop_stills.jsonl').write_text(''.join(json.dumps({'image_path': f'images/{k}', 'caption': c}) + '\n' for k, c in CAPTIONS.items()))
    (demo_dir/name).write_text(STILLS.format(extra=extra, cache=cache))
    return demo_dir/name


def run(model, dataset, out, resume=None, **kw) -> list[dict]:
    cfg = load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=2, learning_rate=1e-2,
                                         timestep_sampling='uniform', max_train_steps=3, expert_switch_every=1,
                                         gradient_accumulation_steps=2, checkpoint_every_n_steps=2, **kw))
    Trainer(cfg, progress=False).train(resume=resume)
    return [json.loads(l) for l in (out/'events.jsonl').read_text().splitlines()]


def test_dop_is_zero_for_a_new_lora_grows_after_and_resumes_exactly(wan22, demo_dir, tmp_path):
    plain = run(wan22, config(demo_dir, 'dop_plain.toml', ''), tmp_path/'plain')
    classed = config(demo_dir, 'dop_class.toml', 'preservation_class = "shape"\ntrigger = "circle"')
    off = run(wan22, classed, tmp_path/'off')
    on = run(wan22, classed, tmp_path/'on', dop_multiplier=1.0)
    assert [e['loss'] for e in off] == [e['loss'] for e in plain]  # dop_multiplier 0: the losses without DOP
    assert [e['dop_loss'] for e in off] == [None] * 3
    assert [e['expert'] for e in on] == ['high', 'low', 'high']
    assert [e['dop_loss'] for e in on][:2] == [0.0, 0.0]  # each expert's first step: LoRA = its own base model
    assert on[2]['dop_loss'] > 0  # the high-noise LoRA has moved from its base
    assert [e['loss'] for e in on] == [e['loss'] for e in off]  # a zero DOP term has a zero gradient
    lora = lambda run, expert: load_file(tmp_path/run/'final'/f'lora_{expert}_noise.safetensors')
    assert all((lora('on', 'low')[k] == v).all() for k, v in lora('off', 'low').items())
    assert any((lora('on', 'high')[k] != v).any() for k, v in lora('off', 'high').items())  # step 3's DOP gradient
    again = run(wan22, classed, tmp_path/'on', resume=tmp_path/'on'/'checkpoints'/'step_000002', dop_multiplier=1.0)
    exact = lambda events: [{k: e[k] for k in ('step', 'loss', 'dop_loss', 'grad_norm', 'timesteps', 'expert')} for e in events]
    assert exact(again) == exact(on)


def test_dop_without_preservation_captions_is_refused_before_caching(tiny_model_dir, demo_dir, tmp_path):
    bare = config(demo_dir, 'dop_bare.toml', '', cache='dop_refused')
    with pytest.raises(TrainingError, match=r'dop_bare.toml: dop_multiplier > 0 .*\[\[datasets\]\] 0 \(dop_stills.jsonl\) has no '
                                            r'preservation_class\. Add preservation_class'):
        run(tiny_model_dir, bare, tmp_path/'run', dop_multiplier=1.0)
    assert not (demo_dir/'cache'/'dop_refused').exists()
    with pytest.raises(ValueError, match='dop_multiplier = -1.0; use 0 \\(off\\) or more'):
        load_run_config(overrides=dict(dop_multiplier=-1.0))
