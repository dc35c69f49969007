"""Swapping blocks changes where the frozen weights wait, never the numbers: two optimizer steps with any number of
swapped blocks give bit-identical outputs and LoRA gradients to a resident model (CPU), 8-bit weights included, and a
no-gradient pass (validation, previews) gives the same output and leaves nothing on the device."""
import pytest
import torch

from lora_training import assert_same, batch, lora_transformer, swapped, train
from wan_nb.offload import BlockSwap, enable_checkpointing


@pytest.fixture(scope='module')
def reference():
    return train(lora_transformer())


@pytest.mark.parametrize('blocks_to_swap', [1, 2, 4])
def test_same_gradients_over_two_steps(reference, blocks_to_swap):
    model = lora_transformer()
    swap = swapped(model, blocks_to_swap)
    assert_same(train(model), reference)
    assert len(swap.resident()) <= 1


def int8_base(model):
    "Give the Linears of blocks 2-3 int8 codes and an fp32 scale buffer, like wan_nb.quant's Linear8bit."
    for block in model.blocks[2:]:
        for m in block.modules():
            if hasattr(m, 'base_layer') and isinstance(m.base_layer, torch.nn.Linear):
                lin = m.base_layer
                scale = lin.weight.abs().amax(1) / 127
                codes = torch.round(lin.weight / scale[:, None]).to(torch.int8)
                lin.weight = torch.nn.Parameter(codes, requires_grad=False)
                lin.register_buffer('scale', scale)
                lin.forward = lambda x, lin=lin: torch.nn.functional.linear(
                    x, lin.weight.to(x.dtype) * lin.scale[:, None], lin.bias)
    return model


def test_int8_base_weights_swap_exactly():
    resident = train(int8_base(lora_transformer()))
    model = int8_base(lora_transformer())
    swap = swapped(model, 2)
    weight = model.blocks[3].attn1.to_q.base_layer.weight
    assert weight.dtype == torch.int8 and any(t is weight for t in swap._blocks[3])
    assert_same(train(model), resident)


def test_validation_pass_matches_and_leaves_nothing_resident():
    with torch.no_grad(): expected = lora_transformer()(**batch(0))[0]
    model = lora_transformer()
    swap = swapped(model, 3)
    with torch.no_grad(): y = model(**batch(0))[0]
    assert torch.equal(y, expected)
    assert swap.resident() == set()


class PoisonedSwap(BlockSwap):
    "Eviction fills the tensors with NaN (integer codes with 77): a read after eviction changes the gradients."
    def _evict(self, i):
        for t in self._blocks[i]: t.data = torch.full_like(t, float('nan') if t.is_floating_point() else 77)
        self._loaded.discard(i)


@pytest.mark.parametrize('offload', [False, True])
@pytest.mark.parametrize('blocks_to_swap', [1, 2, 4])
def test_no_backward_node_reads_an_evicted_block(reference, blocks_to_swap, offload):
    "On CUDA a stale read would hit CPU memory; on the CPU it would go unnoticed, so eviction poisons here."
    model = lora_transformer()
    enable_checkpointing(model, offload)
    PoisonedSwap(model, blocks_to_swap, 'cpu')
    assert_same(train(model), reference)
