"""Training a transformer with swapped blocks but without gradient checkpointing is refused at its first forward pass
with a message naming blocks_to_swap and gradient_checkpointing; passes without gradients and blocks_to_swap = 0 run."""
import pytest
import torch
from diffusers import WanTransformer3DModel

from lora_training import batch, lora_transformer
from wan_nb.models import TINY_TRANSFORMER
from wan_nb.offload import BlockSwap


def test_refuses_without_checkpointing():
    model = lora_transformer()
    BlockSwap(model, 2, 'cpu')
    with pytest.raises(RuntimeError, match=r'blocks_to_swap=2.*gradient_checkpointing'):
        model(**batch(0))
    with torch.no_grad(): model(**batch(0))


def test_no_swapped_blocks_train_without_checkpointing():
    model = lora_transformer()
    BlockSwap(model, 0, 'cpu')
    model(**batch(0))[0].mean().backward()


def test_refuses_unfrozen_base_and_bad_counts():
    with pytest.raises(ValueError, match='freeze the base'):
        BlockSwap(WanTransformer3DModel(**TINY_TRANSFORMER), 1, 'cpu')  # no LoRA yet: every weight trains
    with pytest.raises(ValueError, match=r'use 0\.\.4'): BlockSwap(lora_transformer(), 5, 'cpu')
