"""Every optimizer choice trains and resumes bit for bit: 2 steps, a checkpoint, 2 more after resuming equal 4 steps in one go."""
import json

import pytest
import torch
from peft import get_peft_model_state_dict

from wan_nb.train import Trainer, load_run_config


def run(model, dataset, out, optimizer, **kw):
    lr = 1.0 if optimizer == 'prodigy' else 1e-3
    cfg = load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=2, optimizer=optimizer,
                                         learning_rate=lr, max_train_steps=4, checkpoint_every_n_steps=2, **kw))
    return Trainer(cfg, progress=False)


def losses(out): return [json.loads(l)['loss'] for l in (out/'events.jsonl').read_text().splitlines()]


CLASSES = dict(adamw='AdamW', adamw8bit='AdamW8bit', adamw_bf16='AdamW', lion='Lion', lion8bit='Lion8bit', prodigy='Prodigy')


@pytest.mark.parametrize('optimizer', ['adamw', 'adamw8bit', 'adamw_bf16', 'lion', 'lion8bit', 'prodigy'])
def test_optimizer_resumes_exactly(optimizer, tiny_model_dir, images_dataset, tmp_path):
    whole = run(tiny_model_dir, images_dataset, tmp_path/'whole', optimizer)
    whole.train()
    resumed = run(tiny_model_dir, images_dataset, tmp_path/'resumed', optimizer)
    resumed.train(resume=tmp_path/'whole'/'checkpoints'/'step_000002')
    assert type(whole.optimizer.optimizer).__name__ == CLASSES[optimizer]
    assert losses(tmp_path/'resumed')[-2:] == losses(tmp_path/'whole')[-2:]
    a, b = (get_peft_model_state_dict(t.transformer) for t in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if optimizer == 'adamw_bf16':  # optimi keeps weights and moments in bf16
        state = next(iter(whole.optimizer.state.values()))
        assert state['exp_avg'].dtype == state['exp_avg_sq'].dtype == next(iter(a.values())).dtype == torch.bfloat16
