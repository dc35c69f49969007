"""The Wan 2.2 expert trade: a parked expert keeps exactly its trainable (LoRA) tensors on the compute device,
refuses to run until activated, and trading experts back and forth trains exactly like resident experts."""
import pytest

from lora_training import adamw, assert_same, batch, lora_transformer, step, swapped, train


def lora_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize('blocks_to_swap', [0, 2])
def test_park_keeps_exactly_the_trainable_tensors(blocks_to_swap):
    model = lora_transformer()
    swap = swapped(model, blocks_to_swap)
    everything = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    frozen_swapped = {n for n, p in list(model.named_parameters()) + list(model.named_buffers())
                      if n.split('.')[:2] in [['blocks', str(i)] for i in swap.swapped] and n not in lora_names(model)}
    assert swap.on_device() == everything - frozen_swapped
    swap.park()
    assert swap.on_device() == lora_names(model)
    with pytest.raises(RuntimeError, match='activate'): model(**batch(0))
    swap.activate()
    assert swap.on_device() == everything - frozen_swapped


def test_parked_from_the_start():
    model = lora_transformer()
    swap = swapped(model, 2, active=False)
    assert swap.parked and swap.on_device() == lora_names(model)


def test_trading_experts_trains_like_resident_experts():
    reference = [train(lora_transformer(seed)) for seed in (0, 1)]
    experts = [lora_transformer(0), lora_transformer(1)]
    swaps = [swapped(experts[0], 2), swapped(experts[1], 1, active=False)]
    opts, runs = [adamw(m) for m in experts], [[], []]
    for n in range(4):  # switch every step: expert 0, 1, 0, 1
        k = n % 2
        swaps[1 - k].park(); swaps[k].activate()
        assert swaps[1 - k].on_device() == lora_names(experts[1 - k])
        runs[k].append(step(experts[k], opts[k], n // 2))
    assert_same(runs[0], reference[0]); assert_same(runs[1], reference[1])
