"""`--resume latest` never resumes from half a checkpoint: a newest checkpoint with a truncated state.pt, a LoRA
file with a bad header, or no state.pt at all is named in a warning with the reason, and the run resumes from the
newest whole one, ending exactly like an uninterrupted run; with no whole checkpoint it refuses, listing each one
found and why (CPU, tiny model, in this process)."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wan_nb.cli import main



def cut(p: Path): p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])


DAMAGES = {  # what is done to a checkpoint folder, and what the warning must say
    'truncated state.pt': (lambda c: cut(c/'state.pt'), 'state.pt: cut short'),
    'bad LoRA header': (lambda c: (c/'lora.safetensors').write_bytes(b'\xff' * 8 + b'{"x": 1}'), 'lora.safetensors: bad header'),
    'truncated LoRA': (lambda c: cut(c/'lora.safetensors'), 'lora.safetensors: .* bytes, but its header describes'),
    'no state.pt': (lambda c: (c/'state.pt').unlink(), 'no state.pt'),
}


@pytest.fixture
def run(tiny_model_dir, images_dataset):
    def train(out, *extra):
        sets = [f'model="{tiny_model_dir}"', f'dataset="{images_dataset}"', f'output_dir="{out}"', 'rank=4', 'seed=5',
                'max_train_steps=6', 'checkpoint_every_n_steps=2', 'keep_last_n_checkpoints=3']
        return main(['train', *(x for s in sets for x in ('--set', s)), '--no-track', *extra])
    return train


def losses(out): return [json.loads(l)['loss'] for l in (out/'events.jsonl').read_text().splitlines()]


def test_a_damaged_newest_checkpoint_is_skipped(run, tmp_path):
    ref = tmp_path/'reference'
    assert run(ref) == 0
    reference = load_file(ref/'final'/'lora.safetensors')
    for name, (damage, reason) in DAMAGES.items():
        out = tmp_path/name.replace(' ', '_')
        shutil.copytree(ref/'checkpoints', out/'checkpoints')
        shutil.copy(ref/'events.jsonl', out/'events.jsonl')
        newest = out/'checkpoints'/'step_000006'
        shutil.rmtree(newest)  # the run was stopped after step 5 ...
        shutil.copytree(out/'checkpoints'/'step_000004', newest)  # ... with a step-6 checkpoint that got damaged
        damage(newest)
        with pytest.warns(UserWarning, match=f'step_000006: damaged checkpoint, skipped: {reason}'):
            assert run(out, '--resume', 'latest') == 0, name
        assert losses(out) == losses(ref), name  # resumed from step 4: steps 5 and 6 again, the same
        final = load_file(out/'final'/'lora.safetensors')
        assert all(torch.equal(final[k], reference[k]) for k in reference), name


def test_no_whole_checkpoint_is_refused_with_the_list(run, tmp_path, capsys):
    out = tmp_path/'all-damaged'
    assert run(out) == 0
    shutil.rmtree(out/'final')
    for name, step in (('truncated state.pt', 2), ('no state.pt', 4), ('bad LoRA header', 6)):
        DAMAGES[name][0](out/'checkpoints'/f'step_{step:06d}')
    capsys.readouterr()
    with pytest.warns(UserWarning):
        assert run(out, '--resume', 'latest') == 1
    err = capsys.readouterr().err
    assert 'no whole checkpoint to resume from; found:' in err, err
    for line in ('step_000006: lora.safetensors: bad header', 'step_000004: no state.pt',
                 'step_000002: state.pt: cut short'):
        assert line in err, err
    assert not (out/'final').exists()
