"""Checkpointing with the block inputs kept in CPU memory gives exactly the gradients of plain checkpointing (and of
none), and really stores the inputs: one hidden-states tensor per block per step."""
from lora_training import assert_same, lora_transformer, train
from wan_nb.offload import enable_checkpointing


def test_offload_gives_the_same_gradients():
    plain = lora_transformer(); plain.enable_gradient_checkpointing()
    reference = train(plain)
    assert_same(train(lora_transformer()), reference)
    model = lora_transformer()
    ck = enable_checkpointing(model, offload=True)
    assert_same(train(model), reference)
    tokens, dim = 3 * 4 * 4, 64  # latent frames x (8/2) x (8/2), the tiny model's width
    assert ck.offloaded_bytes == 2 * 4 * tokens * dim * 4  # steps x blocks x fp32 hidden states


def test_checkpointing_without_offload_stores_nothing():
    model = lora_transformer()
    ck = enable_checkpointing(model)
    assert_same(train(model), train(lora_transformer()))
    assert ck.offloaded_bytes == 0 and model.gradient_checkpointing
