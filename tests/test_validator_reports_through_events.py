"""The Validator reports through the trainer's events: `evaluation` after each evaluation, `best` for each new best."""
import json

from wan_nb.train import Callback, Trainer, load_run_config
from wan_nb.validate import Validator


class Recorder(Callback):
    "Records the events a subscriber (such as the MLflow callback) receives."
    def __init__(self): self.events = []
    def on_evaluation(self, trainer, evaluation): self.events.append(('evaluation', trainer.step, evaluation))
    def on_best(self, trainer, folder, evaluation): self.events.append(('best', folder, evaluation))


def test_evaluations_and_new_bests_are_emitted(tiny_model_dir, images_val_dataset, tmp_path):
    cfg = load_run_config(overrides=dict(model=str(tiny_model_dir), dataset=str(images_val_dataset),
                                         output_dir=str(tmp_path/'run'), rank=4, learning_rate=2e-3,
                                         max_train_steps=6, checkpoint_every_n_steps=2))
    validator, recorder = Validator(every_n_steps=2), Recorder()
    Trainer(cfg, [validator, recorder], progress=False).train()
    evaluations = [e for kind, _, e in recorder.events if kind == 'evaluation']
    assert evaluations == validator.history and [e.step for e in evaluations] == [0, 2, 4, 6]
    assert all(kind != 'evaluation' or step == e.step for kind, step, e in recorder.events)
    bests = [(folder, e) for kind, folder, e in recorder.events if kind == 'best']
    assert bests and all(folder == tmp_path/'run'/'checkpoints'/'best' for folder, _ in bests)
    losses = [e.val_loss for _, e in bests]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == len(losses)  # each one a new best
    best = json.loads((tmp_path/'run'/'checkpoints'/'best'/'best.json').read_text())
    assert (best['step'], best['val_loss']) == (bests[-1][1].step, bests[-1][1].val_loss)
