"""A tiny Wan transformer with a LoRA and a deterministic training loop, for the block swap and checkpointing tests."""
import torch
from diffusers import WanTransformer3DModel
from peft import LoraConfig

from wan_nb.models import TINY_TRANSFORMER
from wan_nb.offload import BlockSwap, enable_checkpointing

TARGETS = ['to_q', 'to_k', 'to_v', 'to_out.0', 'ffn.net.0.proj', 'ffn.net.2', 'proj_out']


def lora_transformer(seed=0):
    "The tiny transformer (4 blocks), base frozen, a LoRA with non-zero B so every LoRA tensor gets a gradient."
    torch.manual_seed(seed)
    model = WanTransformer3DModel(**TINY_TRANSFORMER).train()
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=TARGETS))
    return model


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(1, 16, 3, 8, 8, generator=g), timestep=torch.tensor([500]),
                encoder_hidden_states=torch.randn(1, 8, 32, generator=g), return_dict=False)


def adamw(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)


def step(model, opt, seed):
    "One optimizer step on batch `seed`: the output and the LoRA gradients."
    y = model(**batch(seed))[0]
    y.square().mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    opt.step(); opt.zero_grad()
    return y.detach(), grads


def train(model, steps=2):
    "Outputs and LoRA gradients of `steps` AdamW steps on fixed batches."
    opt = adamw(model)
    return [step(model, opt, s) for s in range(steps)]


def assert_same(a, b):
    "Bit-identical outputs and gradients, step by step."
    assert len(a) == len(b)
    for (ya, ga), (yb, gb) in zip(a, b):
        assert torch.equal(ya, yb)
        assert ga.keys() == gb.keys() and len(ga) > 0
        for k in ga: assert torch.equal(ga[k], gb[k]), k


def swapped(model, blocks_to_swap, offload=False, **kw):
    "`model` with checkpointing and BlockSwap on the CPU, as the trainer sets them up (LoRA first)."
    enable_checkpointing(model, offload)
    return BlockSwap(model, blocks_to_swap, 'cpu', **kw)


