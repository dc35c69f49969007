"""`--resume latest --set learning_rate=...`: the next step uses the new value; options a checkpoint fixes are refused by name."""
import json

import pytest

from wan_nb.train import Trainer, TrainingError, load_run_config


def trainer(model, dataset, out, **kw):
    options = dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=2, max_train_steps=2, checkpoint_every_n_steps=2)
    return Trainer(load_run_config(overrides=options | kw), progress=False)


def test_resume_uses_a_new_learning_rate_and_refuses_a_new_rank(tiny_model_dir, images_dataset, tmp_path):
    out = tmp_path/'run'
    trainer(tiny_model_dir, images_dataset, out).train()
    with pytest.raises(TrainingError, match=r"rank = 2 in the checkpoint's run, 4 now; rank cannot change on resume"):
        trainer(tiny_model_dir, images_dataset, out, rank=4, max_train_steps=3).train(resume='latest')
    resumed = trainer(tiny_model_dir, images_dataset, out, learning_rate=5e-5, max_train_steps=3)
    resumed.train(resume='latest')
    events = [json.loads(l) for l in (out/'events.jsonl').read_text().splitlines()]
    assert [e['lr'] for e in events] == [1e-4, 1e-4, 5e-5]
    assert [g['lr'] for g in resumed.optimizer.param_groups] == [5e-5]
    record = json.loads((out/'resumes.jsonl').read_text().splitlines()[-1])
    assert record['step'] == 2 and record['changes'] == {'learning_rate': [1e-4, 5e-5], 'max_train_steps': [2, 3]}
