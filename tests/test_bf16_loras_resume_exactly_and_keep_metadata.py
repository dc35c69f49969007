"""A run with `save_dtype = bf16` writes bf16 LoRA files, resumes bit-exactly (the adapters come back from
state.pt, never from the rounded files), and its files carry the metadata LoRA sites and ComfyUI read (trigger
words, ModelSpec architecture, resolution, frame counts, item counts) through `wan-nb convert` to every format."""
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from wan_nb.cli import main
from wan_nb.lora_io import FORMATS
from wan_nb.train import Trainer, load_run_config

DATASET = '''[general]
enable_bucket = true
trigger = "sks"
[[datasets]]
image_directory = "stills"
cache_directory = "cache/stills"
resolution = [64, 64]
[[datasets]]
video_jsonl_file = "clips.jsonl"
cache_directory = "cache/clips"
resolution = [64, 32]
target_frames = [1, 5]
'''
WRITER_KEYS = ('format', 'wan_nb.dtype', 'lora_adapter_metadata', 'wan_nb.padded_modules')  # set by each writer


@pytest.fixture(scope='module')
def dataset(demo_dir, tmp_path_factory):
    "Two stills (one caption with the trigger word) and 1- and 5-frame heads of one clip, trigger `sks`."
    d = tmp_path_factory.mktemp('triggered')
    (d/'stills').mkdir()
    for name, caption in (('still_00', '[trigger] on a table'), ('still_02', 'a table')):
        shutil.copy(demo_dir/'images'/f'{name}.png', d/'stills')
        (d/'stills'/f'{name}.txt').write_text(caption)
    clip = {'video_path': str(demo_dir/'videos'/'clip_00.mp4'), 'caption': '[trigger] walking'}
    (d/'clips.jsonl').write_text(json.dumps(clip) + '\n')
    (d/'dataset.toml').write_text(DATASET)
    return d/'dataset.toml'


def config(model, dataset, out):
    return load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), name='sks-style',
                                          rank=2, learning_rate=3e-3, timestep_sampling='uniform', max_train_steps=4,
                                          checkpoint_every_n_steps=2, save_dtype='bf16'))


@pytest.fixture(scope='module')
def run(tiny_model_dir, dataset, tmp_path_factory):
    "An uninterrupted 4-step bf16 run (checkpoints at steps 2 and 4)."
    out = tmp_path_factory.mktemp('bf16')/'run'
    Trainer(config(tiny_model_dir, dataset, out), progress=False).train()
    return out


def tensor_bytes(path) -> int:
    "The size of a safetensors file without its header (8 bytes of length, then the JSON header)."
    with open(path, 'rb') as f: return path.stat().st_size - 8 - int.from_bytes(f.read(8), 'little')


def header(path):
    with safe_open(path, framework='pt') as f: return f.metadata()


def test_bf16_files_resume_bit_exactly(run, tiny_model_dir, dataset, tmp_path):
    step2 = run/'checkpoints'/'step_000002'
    file, state = load_file(step2/'lora.safetensors'), torch.load(step2/'state.pt', weights_only=True)['adapters']['single']
    assert {t.dtype for t in file.values() if t.ndim == 2} == {torch.bfloat16}
    assert {t.dtype for t in state.values()} == {torch.float32}
    rounded = file['diffusion_model.blocks.0.self_attn.q.lora_B.weight'].float()
    assert not torch.equal(rounded, state['blocks.0.attn1.to_q.lora_B.weight'])  # resuming from the file would drift

    resumed = tmp_path/'resumed'
    shutil.copytree(step2, resumed/'checkpoints'/step2.name)
    Trainer(config(tiny_model_dir, dataset, resumed), progress=False).train(resume='latest')
    ours, theirs = (torch.load(r/'checkpoints'/'step_000004'/'state.pt', weights_only=True)['adapters']['single']
                    for r in (run, resumed))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    a, b = load_file(run/'final'/'lora.safetensors'), load_file(resumed/'final'/'lora.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_metadata_names_trigger_model_and_data(run):
    meta = header(run/'final'/'lora.safetensors')
    assert (meta['modelspec.trigger_phrase'], meta['modelspec.architecture'], meta['modelspec.title']) == \
        ('sks', 'wan2.1-t2v/lora', 'sks-style')
    assert json.loads(meta['ss_tag_frequency']) == {'stills': {'sks': 1}, 'clips.jsonl': {'sks': 1}}
    # the bucket with the most samples (the clip's two windows) is the resolution; each still has its own bucket
    assert (meta['modelspec.sai_model_spec'], meta['modelspec.resolution'], meta['ss_resolution']) == ('1.0.0', '64x32', '(64, 32)')
    assert (set(meta['wan_nb.resolutions'].split(', ')), meta['wan_nb.frame_counts']) == ({'64x32', '64x64', '48x80'}, '1, 5')
    assert (meta['wan_nb.num_images'], meta['wan_nb.num_video_windows'], meta['ss_num_train_images']) == ('2', '2', '4')
    assert json.loads(meta['ss_dataset_dirs']) == {'stills': {'n_repeats': 1, 'img_count': 2},
                                                   'clips.jsonl': {'n_repeats': 1, 'img_count': 1}}
    assert (meta['wan_nb.dtype'], meta['ss_steps'], meta['modelspec.date'][:2]) == ('bf16', '4', '20')


def test_convert_keeps_metadata_and_sets_dtype(run, tmp_path):
    final = run/'final'/'lora.safetensors'
    ours = {k: v for k, v in header(final).items() if k not in WRITER_KEYS}
    for to in FORMATS:
        out = tmp_path/to if to == 'peft' else tmp_path/f'{to}.safetensors'
        assert main(['convert', str(final), '-o', str(out), '--to', to]) == 0
        theirs = header(out/'adapter_model.safetensors' if to == 'peft' else out)
        assert {k: v for k, v in theirs.items() if k not in WRITER_KEYS} == ours, to
    full, half = tmp_path/'fp32.safetensors', tmp_path/'bf16.safetensors'
    assert main(['convert', str(final), '-o', str(full), '--dtype', 'fp32']) == 0
    assert main(['convert', str(full), '-o', str(half), '--dtype', 'bf16']) == 0
    assert (header(full)['wan_nb.dtype'], header(half)['wan_nb.dtype']) == ('fp32', 'bf16')
    assert tensor_bytes(half) < 0.55 * tensor_bytes(full)  # the factors halve; fp32 alphas stay
    a, b = load_file(final), load_file(half)  # bf16 -> fp32 -> bf16 is exact
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
