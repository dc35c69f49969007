"""A user with only ComfyUI's single files (transformer, wan_2.1_vae, umt5_xxl_fp16) and a tokenizer folder plans, caches
and trains with `wan-nb train` and a RUN.toml naming them; with base_dtype = "bf16" the transformer sits in bf16 and the
LoRA in fp32."""
import subprocess
import sys
from pathlib import Path

import torch

from wan_nb.cache import load_entry, model_cache_index
from wan_nb.lora_io import read_lora
from wan_nb.models import load_wan, make_tiny_model, model_source, write_comfy_files
from wan_nb.plan import plan_dataset
from wan_nb.train import Trainer, load_run_config

IMAGES = '''[general]
enable_bucket = true
[[datasets]]
image_directory = "images"
cache_directory = "cache/comfy_images"
resolution = [64, 64]
'''
WAN_NB = str(Path(sys.executable).parent/'wan-nb')


def run_toml(folder: Path, comfy, dataset: Path, **extra) -> Path:
    lines = [f'model = "comfy/{comfy.model.name}"', 'vae = "comfy/wan_2.1_vae.safetensors"',
             'text_encoder = "comfy/umt5_xxl_fp16.safetensors"', 'tokenizer = "comfy/tokenizer"',
             f'dataset = "{dataset}"', 'output_dir = "out"', 'rank = 4', 'learning_rate = 3e-3',
             *(f'{k} = {v!r}'.replace("'", '"') for k, v in extra.items())]
    (folder/'run.toml').write_text('\n'.join(lines) + '\n')
    return folder/'run.toml'


def test_wan_nb_train_runs_from_comfyui_single_files(tiny_model_dir, demo_dir, tmp_path):
    comfy = write_comfy_files(tiny_model_dir, tmp_path/'comfy')  # bf16 files, like wan2.1_t2v_1.3B_bf16.safetensors
    (demo_dir/'comfy_images.toml').write_text(IMAGES)
    run = run_toml(tmp_path, comfy, demo_dir/'comfy_images.toml', max_train_steps=3, checkpoint_every_n_steps=3)
    r = subprocess.run([WAN_NB, 'train', str(run), '--no-track'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lora = read_lora(tmp_path/'out'/'final'/'lora.safetensors')
    assert lora.metadata['wan_nb.step'] == '3' and len(lora.modules) == 4 * 10
    cfg = load_run_config(run)
    assert Path(cfg.vae) == comfy.vae and Path(cfg.tokenizer) == comfy.tokenizer  # relative to the RUN.toml
    entries = model_cache_index(plan_dataset(cfg.dataset, progress=False), model_source(cfg)).entries
    assert entries and all(e.latents.is_file() and e.text.is_file() for e in entries)  # cached from the single files


def test_single_files_hold_the_diffusers_folders_vae_and_text_encoder(tiny_model_dir, tmp_path):
    "What caching encodes with: the VAE file's weights exactly, the umt5_xxl_fp16 file's rounded through fp16."
    comfy = write_comfy_files(tiny_model_dir, tmp_path/'comfy', dtype='fp32')
    ours = load_wan(comfy, components=('vae', 'text_encoder'))
    theirs = load_wan(tiny_model_dir, components=('vae', 'text_encoder'))
    for a, b, stored in ((ours.vae, theirs.vae, torch.float32), (ours.text_encoder, theirs.text_encoder, torch.float16)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(stored).float()) for k in sa)


def test_bf16_base_weights_train_an_fp32_lora(tiny_model_dir, demo_dir, tmp_path):
    comfy = write_comfy_files(tiny_model_dir, tmp_path/'comfy')
    (demo_dir/'comfy_images.toml').write_text(IMAGES)
    cfg = load_run_config(run_toml(tmp_path, comfy, demo_dir/'comfy_images.toml', max_train_steps=2,
                                   checkpoint_every_n_steps=2, base_dtype='bf16'))
    trainer = Trainer(cfg, progress=False)
    trainer.train()
    q = trainer.transformer.blocks[0].attn1.to_q
    assert q.base_layer.weight.dtype == torch.bfloat16
    assert {p.dtype for p in trainer.optimizer.param_groups[0]['params']} == {torch.float32}
    assert all(torch.isfinite(torch.tensor(trainer.losses)))
    assert set(trainer.phase_memory_mb) == {'cache', 'load', 'train'}


def test_wan_nb_cache_takes_single_files(tiny_model_dir, demo_dir, tmp_path, capsys):
    from wan_nb.cli import main
    comfy = write_comfy_files(tiny_model_dir, tmp_path/'comfy')
    (demo_dir/'comfy_cache.toml').write_text(IMAGES.replace('cache/comfy_images', 'cache/comfy_cli'))
    files = ['--model', comfy.model, '--vae', comfy.vae, '--text-encoder', comfy.text_encoder, '--tokenizer', comfy.tokenizer]
    assert main(['cache', str(demo_dir/'comfy_cache.toml'), *map(str, files), '--verify']) == 0
    assert 'verify: ' in capsys.readouterr().out
    assert main(['cache', str(demo_dir/'comfy_cache.toml'), '--model', str(comfy.model)]) == 2  # no VAE named
    assert 'no vae for this model; name its file in the RUN.toml (vae = ...) or on the command line (--vae)' in capsys.readouterr().err


def test_wan21_i2v_trains_from_comfyui_files_and_clip_vision_h(clips_dataset, tmp_path):
    "Wan 2.1 I2V from its transformer file and clip_vision_h.safetensors: conditions cached, image layers trained."
    i2v = make_tiny_model(tmp_path/'i2v', variant='i2v-2.1')
    comfy = write_comfy_files(i2v, tmp_path/'comfy')
    assert comfy.image_encoder.name == 'clip_vision_h.safetensors'
    run = run_toml(tmp_path, comfy, clips_dataset, image_encoder='comfy/clip_vision_h.safetensors',
                   max_train_steps=2, checkpoint_every_n_steps=2)
    r = subprocess.run([WAN_NB, 'train', str(run), '--no-track'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lora = read_lora(tmp_path/'out'/'final'/'lora.safetensors')
    assert len(lora.modules) == 4 * 12  # the 10 T2V layers and add_k_proj / add_v_proj of every block
    cfg = load_run_config(run)
    entries = model_cache_index(plan_dataset(cfg.dataset, progress=False), model_source(cfg)).entries
    assert entries and all(sorted(load_entry(e)) == ['image', 'latents', 'text', 'y'] for e in entries)
