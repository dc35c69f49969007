"""The tiny Wan is big enough to learn: a LoRA trained briefly on demo clips clearly lowers the flow-matching loss.

This checks the sizing claim of nbs/02_models.ipynb with the plain ingredients (PyAV frames, the tiny VAE and text
encoder, a peft LoRA on the transformer, the flow-matching objective of REFERENCE.md section 3), not the trainer.
"""
import av
import numpy as np
import torch
from peft import LoraConfig
from PIL import Image, ImageOps

from wan_nb.models import load_wan

TARGETS = ['attn1.to_q', 'attn1.to_k', 'attn1.to_v', 'attn1.to_out.0', 'attn2.to_q', 'attn2.to_k', 'attn2.to_v',
           'attn2.to_out.0', 'ffn.net.0.proj', 'ffn.net.2']


def clip_tensor(path, frames=9, size=(64, 32)):
    "First `frames` frames resized to cover `size` and centre-cropped, as (3, T, H, W) in [-1, 1]."
    with av.open(str(path)) as c:
        rgb = [np.asarray(ImageOps.fit(f.to_image(), size, Image.LANCZOS)) for _, f in zip(range(frames), c.decode(video=0))]
    return torch.from_numpy(np.stack(rgb)).permute(3, 0, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def encode(wan, demo_dir, n=8):
    clips = sorted((demo_dir/'videos').glob('*.mp4'))[:n]
    z = wan.vae.encode(torch.stack([clip_tensor(p) for p in clips])).latent_dist.mode()
    mean = torch.tensor(wan.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(wan.vae.config.latents_std).view(1, -1, 1, 1, 1)
    tokens = wan.tokenizer([p.with_suffix('.txt').read_text() for p in clips], padding='max_length', max_length=32,
                           truncation=True, return_tensors='pt')
    text = wan.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    return (z - mean) / std, text * tokens.attention_mask[..., None]  # padding positions are zeros, as in WanPipeline


def flow_loss(transformer, x0, text, t, noise):
    xt = (1 - t.view(-1, 1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1, 1) * noise
    pred = transformer(hidden_states=xt, timestep=t * 1000, encoder_hidden_states=text, return_dict=False)[0]
    return torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())


@torch.no_grad()
def fixed_eval_loss(transformer, x0, text):
    "Mean loss over fixed timesteps 0.1 ... 0.9 and fixed noise: the same number for the same weights."
    g = torch.Generator().manual_seed(42)
    losses = [flow_loss(transformer, x0, text, torch.full((len(x0),), q), torch.randn(x0.shape, generator=g))
              for q in (0.1, 0.3, 0.5, 0.7, 0.9)]
    return torch.stack(losses).mean().item()


def test_lora_on_demo_clips_lowers_the_loss(tiny_model_dir, demo_dir):
    torch.manual_seed(0)
    wan = load_wan(tiny_model_dir, components=('transformer', 'vae', 'text_encoder', 'tokenizer'))
    x0, text = encode(wan, demo_dir)
    transformer = wan.transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=TARGETS))
    params = [p for p in transformer.parameters() if p.requires_grad]
    assert 30_000 < sum(p.numel() for p in params) < 60_000
    before = fixed_eval_loss(transformer, x0, text)
    opt = torch.optim.AdamW(params, lr=3e-3)
    transformer.train()
    for _ in range(150):
        loss = flow_loss(transformer, x0, text, torch.rand(len(x0)), torch.randn_like(x0))
        opt.zero_grad(); loss.backward(); opt.step()
    after = fixed_eval_loss(transformer.eval(), x0, text)
    print(f'fixed-noise validation loss: {before:.4f} -> {after:.4f}')
    assert after < 0.8 * before, (before, after)
