"""A pickle that would run code when loaded is never loaded: as a LoRA (under a .safetensors or a .pt name), as a
checkpoint's state.pt and as a cache entry it is refused with a message, and the code it carries never runs."""
import os, pickle
from pathlib import Path

import pytest
import torch

from wan_nb.cache import load_entry
from wan_nb.lora_io import read_lora
from wan_nb.train import Trainer, TrainingError, load_run_config


class Payload:
    "Unpickling this creates the marker file: what a malicious checkpoint would do instead."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))


def evil(path: Path, marker: Path, torch_format: bool = False) -> Path:
    "Write a pickle that runs code: plain pickle bytes, or torch.save's zip format."
    obj = {'lora_unet_blocks_0_self_attn_q.lora_down.weight': Payload(marker)}
    if torch_format: torch.save(obj, path)
    else: path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


@pytest.mark.parametrize('name,torch_format', [('lora.safetensors', False), ('lora.safetensors', True),
                                               ('lora.pt', True), ('lora.bin', False)])
def test_a_pickled_lora_is_refused(tmp_path, name, torch_format):
    marker = tmp_path/'pwned'
    path = evil(tmp_path/name, marker, torch_format)
    with pytest.raises(ValueError, match='pickle can run arbitrary code'):
        read_lora(path)
    assert not marker.exists()


def test_a_pickled_checkpoint_state_is_refused(tiny_model_dir, demo_dir, tmp_path):
    cfg = load_run_config(overrides=dict(model=str(tiny_model_dir), dataset=str(demo_dir/'dataset.toml'),
                                         output_dir=str(tmp_path/'run'), rank=4, max_train_steps=2,
                                         checkpoint_every_n_steps=2, validate_every_n_steps=None, sample_prompts=None))
    Trainer(cfg, progress=False).train()
    (ckpt,) = (tmp_path/'run'/'checkpoints').glob('step_*')
    marker = tmp_path/'pwned'
    evil(ckpt/'state.pt', marker, torch_format=True)  # what a shared or downloaded run folder could hold
    for resume in ('latest', ckpt):
        with pytest.raises((TrainingError, pickle.UnpicklingError)) as e:
            Trainer(cfg, progress=False).train(resume=resume)
        assert 'weights_only' in str(e.value) or 'state.pt' in str(e.value), str(e.value)
        assert not marker.exists()


def test_a_pickled_cache_entry_is_refused(tmp_path):
    from wan_nb.cache import CacheEntry
    import dataclasses
    marker = tmp_path/'pwned'
    latents, text = evil(tmp_path/'latents.safetensors', marker), evil(tmp_path/'text.safetensors', marker, True)
    fields = {f.name: None for f in dataclasses.fields(CacheEntry)}
    entry = CacheEntry(**{**fields, 'latents': latents, 'text': text, 'empty_text': text})
    with pytest.raises(Exception, match='(?i)safetensors|header'):
        load_entry(entry)
    assert not marker.exists()
