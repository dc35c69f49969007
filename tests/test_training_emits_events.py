"""The trainer talks to callbacks through named events, in order: train_begin, step_end per step, checkpoint after
the steps that write one, and train_end with the final LoRA's folder; a resume does not repeat the earlier ones."""
import shutil

from wan_nb.train import Callback, Trainer, load_run_config

SMALL = '''[general]
enable_bucket = true
[[datasets]]
image_directory = "images"
cache_directory = "cache/events_images"
resolution = [64, 64]
'''


class Recorder(Callback):
    def __init__(self): self.seen = []
    def on_train_begin(self, trainer): self.seen.append(('train_begin', trainer.step))
    def on_step_end(self, trainer, event): self.seen.append(('step_end', event.step))
    def on_checkpoint(self, trainer, folder): self.seen.append(('checkpoint', folder.name))
    def on_train_end(self, trainer, final): self.seen.append(('train_end', final.name, sorted(p.name for p in final.iterdir())))


class OnlySteps(Callback):
    "A callback that overrides one event: the others are Callback's no-ops."
    def __init__(self): self.steps = 0
    def on_step_end(self, trainer, event): self.steps += 1


def test_events_arrive_in_order_and_resume_continues_them(tiny_model_dir, demo_dir, tmp_path):
    (demo_dir/'events.toml').write_text(SMALL)
    cfg = load_run_config(overrides=dict(model=str(tiny_model_dir), dataset=str(demo_dir/'events.toml'), rank=4,
                                         output_dir=str(tmp_path/'run'), max_train_steps=4, checkpoint_every_n_steps=2,
                                         timestep_sampling='uniform'))
    rec, steps = Recorder(), OnlySteps()
    Trainer(cfg, callbacks=[rec, steps], progress=False).train()
    assert rec.seen == [('train_begin', 0), ('step_end', 1), ('step_end', 2), ('checkpoint', 'step_000002'),
                        ('step_end', 3), ('step_end', 4), ('checkpoint', 'step_000004'),
                        ('train_end', 'final', ['lora.safetensors'])]
    assert steps.steps == 4

    shutil.copytree(tmp_path/'run'/'checkpoints'/'step_000002', tmp_path/'again'/'checkpoints'/'step_000002')
    again = Recorder()
    cfg.output_dir = str(tmp_path/'again')
    Trainer(cfg, callbacks=[again], progress=False).train(resume='latest')
    assert [e[:2] for e in again.seen] == [('train_begin', 2), ('step_end', 3), ('step_end', 4),
                                           ('checkpoint', 'step_000004'), ('train_end', 'final')]
