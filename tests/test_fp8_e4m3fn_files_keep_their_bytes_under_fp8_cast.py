"""A user's plain fp8_e4m3fn transformer file (no scales) loaded with quantization = 'fp8_cast' keeps every block
weight's bytes exactly: no requantisation, no rounding through a scale."""
import torch
from safetensors import safe_open

from wan_nb.models import _diffusers_names, identify_model, load_wan, write_comfy_files
from wan_nb.quant import Linear8bit


def test_fp8_e4m3fn_file_keeps_its_bytes(tiny_model_dir, tmp_path):
    src = write_comfy_files(tiny_model_dir, tmp_path/'e4m3', dtype='fp8_e4m3fn')
    assert identify_model(src).quantization == 'fp8_e4m3fn'
    tf = load_wan(src, ('transformer',), dtype=torch.bfloat16, quantization='fp8_cast').transformer
    with safe_open(src.model, 'pt') as f: stored = {k: f.get_tensor(k) for k in f.keys()}
    fp8 = {k: n for k, n in _diffusers_names(stored).items() if stored[k].dtype == torch.float8_e4m3fn}
    assert len(fp8) == 40
    for k, n in fp8.items():
        module = tf.get_submodule(n.removesuffix('.weight'))
        assert type(module) is Linear8bit and module.scale is None
        assert torch.equal(module.weight, stored[k].view(torch.uint8)), k
