"""A training step loads each swapped block one block ahead of use, evicts it after use (the last one stays for the
backward pass), recomputes in reverse order in the backward pass, and never holds more than two swapped blocks on the
compute device; the log of every block call matches `swap_schedule`."""
import pytest

from lora_training import lora_transformer, swapped, train
from wan_nb.offload import swap_schedule


def test_schedule_of_two_swapped_blocks_is_spelled_out():
    assert swap_schedule(4, 2) == [
        (0, 'forward', []), (1, 'forward', [2]), (2, 'forward', [2, 3]), (3, 'forward', [3]),
        (3, 'backward', [2, 3]), (2, 'backward', [2]), (1, 'backward', []), (0, 'backward', [])]


@pytest.mark.parametrize('blocks_to_swap', [1, 2, 3, 4])
def test_training_step_follows_schedule(blocks_to_swap):
    model = lora_transformer()
    swap = swapped(model, blocks_to_swap, record=True)
    train(model, steps=2)
    assert swap.log == 2 * swap_schedule(4, blocks_to_swap)
    assert max(len(r) for *_, r in swap.log) == min(2, blocks_to_swap)


def test_offloaded_activations_keep_the_schedule():
    model = lora_transformer()
    swap = swapped(model, 2, offload=True, record=True)
    train(model, steps=1)
    assert swap.log == swap_schedule(4, 2)
