"""Early stopping: after `early_stop_patience` validations without a better val/loss the run ends normally, its final
LoRA is the best checkpoint's, the reason is set before train_end; a resumed run counts on where it stopped.
The validation losses are scripted (the training is real), so the test knows where the run must stop."""
from safetensors import safe_open

from wan_nb.train import Callback, Trainer, load_run_config
from wan_nb.validate import Evaluation, Validator

VAL_LOSS = {0: 1.0, 1: 0.9, 2: 0.8, 3: 0.85, 4: 0.95, 5: 0.7}  # best at step 2; patience 2 runs out at step 4


def scripted(self, trainer, step=None):
    loss = VAL_LOSS[trainer.step]
    return Evaluation(trainer.step, [0.5], loss, [loss], loss, [loss])


class StopReason(Callback):
    def on_train_end(self, trainer, final): self.seen = trainer.stop_reason


def run(model, dataset, out, steps, every=None, resume=None):
    cfg = load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=2,
                                         learning_rate=2e-3, max_train_steps=steps, checkpoint_every_n_steps=every,
                                         validate_every_n_steps=1, early_stop_patience=2))
    seen = StopReason()
    trainer = Trainer(cfg, [Validator(1, early_stop_patience=2), seen], progress=False)
    return trainer, trainer.train(resume=resume), seen.seen


def lora(path):
    with safe_open(path, 'pt') as f: return f.metadata()['wan_nb.step'], {k: f.get_tensor(k) for k in f.keys()}


def test_early_stopping_ends_on_the_best_checkpoint(tiny_model_dir, images_val_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(Validator, 'score', scripted)
    trainer, final, seen = run(tiny_model_dir, images_val_dataset, tmp_path/'run', steps=8)
    reason = ("early stop: val/loss did not improve for 2 validations (best 0.8000 at step 2); "
              "the final LoRA is checkpoints/best's (step 2)")
    assert (trainer.step, trainer.stop_reason, seen) == (4, reason, reason)
    ckpts = tmp_path/'run'/'checkpoints'
    assert sorted(p.name for p in ckpts.iterdir()) == ['best', 'step_000001', 'step_000002', 'step_000004']
    step, best = lora(ckpts/'best'/'lora.safetensors')
    assert step == '2' and (final/'lora.safetensors').read_bytes() == (ckpts/'best'/'lora.safetensors').read_bytes()

    # killed after step 3 (its checkpoint), resumed: it stops at step 4 too, with the same weights
    _, _, seen = run(tiny_model_dir, images_val_dataset, tmp_path/'killed', steps=3, every=3)
    assert seen is None
    resumed, final, seen = run(tiny_model_dir, images_val_dataset, tmp_path/'killed', steps=8, resume='latest')
    assert (resumed.step, seen) == (4, reason)
    assert lora(final/'lora.safetensors')[0] == '2'
    assert all(t.equal(best[k]) for k, t in lora(final/'lora.safetensors')[1].items())
    last, again = lora(ckpts/'step_000004'/'lora.safetensors'), lora(tmp_path/'killed'/'checkpoints'/'step_000004'/'lora.safetensors')
    assert last[0] == again[0] == '4' and all(last[1][k].equal(again[1][k]) for k in last[1])
