"""The validation loss is stable: it leaves training untouched, repeats bit for bit, and survives a resume."""
import json
import shutil

import pytest

from wan_nb.train import Trainer, load_run_config
from wan_nb.validate import Validator, stable_validation_loss

HELD_OUT = '''[general]
enable_bucket = true
validation_split = 0.25
[[datasets]]
image_directory = "images"
cache_directory = "cache/val_images"
resolution = [64, 64]
[[datasets]]
video_directory = "videos"
cache_directory = "cache/val_heads"
resolution = [64, 32]
target_frames = [1, 5]
'''


@pytest.fixture
def config(demo_dir):
    (demo_dir/'held_out.toml').write_text(HELD_OUT)
    return demo_dir/'held_out.toml'


def cfg(model, config, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(config), output_dir=str(out), rank=4, learning_rate=2e-3,
                                     max_train_steps=12, checkpoint_every_n_steps=6, **kw))


def lines(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_validation_leaves_the_training_losses_unchanged(tiny_model_dir, config, tmp_path):
    plain = Trainer(cfg(tiny_model_dir, config, tmp_path/'plain'), progress=False)
    plain.train()
    validator = Validator(every_n_steps=3)
    validated = Trainer(cfg(tiny_model_dir, config, tmp_path/'validated'), [validator], progress=False)
    validated.train()
    assert validated.losses == plain.losses
    assert [e.step for e in validator.history] == [0, 3, 6, 9, 12] and validator.sets['val'] and validator.sets['probe']
    assert validator.history[-1].val_loss < validator.history[0].val_loss  # the LoRA learned something general


def test_the_same_weights_score_the_same_and_a_resume_changes_nothing(tiny_model_dir, config, tmp_path):
    validator = Validator(every_n_steps=3)
    trainer = Trainer(cfg(tiny_model_dir, config, tmp_path/'run'), [validator], progress=False)
    trainer.train()
    assert stable_validation_loss(trainer.transformer, validator.batches['val'], validator.timesteps) == \
        stable_validation_loss(trainer.transformer, validator.batches['val'], validator.timesteps)
    shutil.copytree(tmp_path/'run'/'checkpoints'/'step_000006', tmp_path/'resumed'/'checkpoints'/'step_000006')
    (tmp_path/'resumed'/'validation.jsonl').write_text(''.join(json.dumps(l) + '\n' for l in lines(tmp_path/'run'/'validation.jsonl')[:3]))
    Trainer(cfg(tiny_model_dir, config, tmp_path/'resumed'), [Validator(every_n_steps=3)], progress=False).train(resume='latest')
    assert lines(tmp_path/'resumed'/'validation.jsonl') == lines(tmp_path/'run'/'validation.jsonl')
    best = json.loads((tmp_path/'run'/'checkpoints'/'best'/'best.json').read_text())
    assert best['val_loss'] == min(e.val_loss for e in validator.history if e.step in (6, 12))
