"""A training process killed with SIGKILL after a checkpoint and resumed ends with LoRA weights bit-identical to an
uninterrupted run, and logs the same per-step losses from the resume point (CPU, tiny model)."""
from killed_runs import assert_same_final_loras, kill_at, losses, run_ok, train_args

STEPS, EVERY = 200, 20


def settings(model, config, out):
    return [f'model="{model}"', f'dataset="{config}"', f'output_dir="{out}"', 'rank=4', 'learning_rate=1e-3', 'seed=7',
            f'max_train_steps={STEPS}', f'checkpoint_every_n_steps={EVERY}', 'keep_last_n_checkpoints=2']


def test_sigkill_then_resume_equals_uninterrupted(tiny_model_dir, stills_and_clips_dataset, tmp_path):
    train = lambda out: train_args(settings(tiny_model_dir, stills_and_clips_dataset, tmp_path/out))
    run_ok(train('reference'))
    kill_at(train('killed'), tmp_path/'killed'/'checkpoints'/f'step_{EVERY:06d}')
    assert EVERY <= len(losses(tmp_path/'killed')) < STEPS and not (tmp_path/'killed'/'final').exists()
    run_ok(train('killed') + ['--resume', 'latest'])
    assert losses(tmp_path/'killed') == losses(tmp_path/'reference')  # the log reads as if nothing had happened
    assert_same_final_loras(tmp_path/'reference', tmp_path/'killed')
