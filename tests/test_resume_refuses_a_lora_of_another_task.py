"""Resuming a text-to-video run's checkpoint on an image-to-video model is refused, naming both models: Wan 2.2 I2V
has exactly the layer names and shapes of T2V, so the adapters would load without a word and train a LoRA whose
start was learnt for another task."""
import re

import pytest

from wan_nb.models import make_tiny_model
from wan_nb.train import Trainer, TrainingError, load_run_config


def test_t2v_checkpoint_on_an_i2v_model_is_refused(tiny_model_dir, clips_dataset, tmp_path):
    run = lambda model, steps: load_run_config(overrides=dict(
        model=str(model), dataset=str(clips_dataset), output_dir=str(tmp_path/'run'), rank=4,
        max_train_steps=steps, checkpoint_every_n_steps=2))
    Trainer(run(tiny_model_dir, 2), progress=False).train()
    i2v = make_tiny_model(tmp_path/'i2v', variant='i2v-2.2')
    message = (f"the checkpoint's LoRA was trained on {tiny_model_dir} (custom, text-to-video), and this run's model is "
               f"{i2v} (custom, image-to-video); a LoRA does not carry over between tasks")
    with pytest.raises(TrainingError, match=re.escape(message)):
        Trainer(run(i2v, 4), progress=False).train(resume='latest')
