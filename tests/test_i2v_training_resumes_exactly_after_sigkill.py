"""An image-to-video training process (each of the three kinds) killed with SIGKILL after a checkpoint and resumed
ends with LoRA files bit-identical to an uninterrupted run's, with the same per-step losses: the cached conditions
(image latents, CLIP features) and TI2V's clean first frame are read the same way after a resume."""
import pytest

from killed_runs import assert_same_final_loras, kill_at, losses, run_ok, train_args
from wan_nb.models import make_tiny_model

STEPS, EVERY = 24, 8


# Wan 2.2 I2V (two experts traded on the device) runs in `make test`; the other two add ~55 s and run with -m slow.
@pytest.mark.parametrize('variant', [pytest.param('i2v-2.1', marks=pytest.mark.slow), 'i2v-2.2',
                                     pytest.param('ti2v-5b', marks=pytest.mark.slow)])
def test_sigkill_then_resume_equals_uninterrupted(variant, clips_dataset, tmp_path):
    model = make_tiny_model(tmp_path/'model', variant=variant)
    settings = lambda out: [f'model="{model}"', f'dataset="{clips_dataset}"', f'output_dir="{tmp_path/out}"',
                            'rank=4', 'learning_rate=1e-3', 'seed=7', f'max_train_steps={STEPS}', 'expert_switch_every=4',
                            f'checkpoint_every_n_steps={EVERY}', 'keep_last_n_checkpoints=2']
    train = lambda out: train_args(settings(out), '--no-track')
    run_ok(train('reference'))
    kill_at(train('killed'), tmp_path/'killed'/'checkpoints'/f'step_{EVERY:06d}')
    assert EVERY <= len(losses(tmp_path/'killed')) < STEPS and not (tmp_path/'killed'/'final').exists()
    run_ok(train('killed') + ['--resume', 'latest'])
    assert losses(tmp_path/'killed') == losses(tmp_path/'reference')
    assert_same_final_loras(tmp_path/'reference', tmp_path/'killed')
