"""A quantization mode wan-nb does not have is refused before any weights are read, with a message that lists the
modes; 'none' and None load the base dtype."""
import pytest
import torch

from wan_nb.models import load_wan
from wan_nb.quant import Linear8bit, quantize_linears


def test_unknown_mode_is_refused_with_the_modes_listed(tiny_model_dir):
    for call in (lambda: load_wan(tiny_model_dir, ('transformer',), quantization='int4'),
                 lambda: quantize_linears(torch.nn.Linear(2, 2), 'int4'),
                 lambda: Linear8bit(2, 2, mode='int4')):
        with pytest.raises(ValueError, match=r"'int4' is not an 8-bit mode: choose 'fp8' \(scaled e4m3\), 'int8'"):
            call()
    for none in (None, 'none'):
        tf = load_wan(tiny_model_dir, ('transformer',), dtype=torch.bfloat16, quantization=none).transformer
        assert tf.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
