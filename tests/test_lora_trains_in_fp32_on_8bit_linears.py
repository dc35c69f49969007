"""peft's LoRA wraps a Linear8bit like a Linear: the adapter stays fp32 (not cast to the 8-bit base's dtype), gets
gradients and learns, and the base codes and scales never change."""
import torch
from peft import LoraConfig

from wan_nb.models import load_wan
from wan_nb.quant import QUANT_MODES, Linear8bit


def test_lora_on_each_mode_trains_and_leaves_the_base_alone(tiny_model_dir):
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 16, 3, 8, 8, generator=g), torch.randn(1, 7, 32, generator=g)
    target = torch.randn(1, 16, 3, 8, 8, generator=g)
    for mode in QUANT_MODES:
        tf = load_wan(tiny_model_dir, ('transformer',), dtype=torch.bfloat16, quantization=mode).transformer
        tf.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights='gaussian',
                                  target_modules=['to_q', 'to_k', 'to_v', 'to_out.0', 'ffn.net.0.proj', 'ffn.net.2']))
        assert type(tf.blocks[0].ffn.net[2].base_layer) is Linear8bit
        lora = {n: p for n, p in tf.named_parameters() if 'lora_' in n}
        assert {p.dtype for p in lora.values()} == {torch.float32} and len(lora) == 4 * 10 * 2
        assert {n for n, p in tf.named_parameters() if p.requires_grad} == set(lora)
        base = {n: t.clone() for n, t in tf.state_dict().items() if 'lora_' not in n}
        start = {n: p.detach().clone() for n, p in lora.items()}
        tf.train()
        opt = torch.optim.AdamW(lora.values(), lr=1e-2)
        losses = []
        for _ in range(5):
            pred = tf(x.bfloat16(), torch.tensor([500.0]), text.bfloat16(), return_dict=False)[0]
            loss = torch.nn.functional.mse_loss(pred.float(), target)
            loss.backward()
            assert all(p.grad is not None for p in lora.values())
            opt.step(); opt.zero_grad()
            losses.append(loss.item())
        assert losses[-1] < losses[0], (mode, losses)
        assert all(not torch.equal(p, start[n]) for n, p in lora.items())  # B from its first step, A from the second
        for n, t in tf.state_dict().items():
            if n in base: assert torch.equal(t, base[n]), (mode, n)
