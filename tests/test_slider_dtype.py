"`wan-nb slider --dtype` writes the slider's factors in the precision asked for; without it, in the inputs'."
import torch
from safetensors import safe_open

from wan_nb.cli import main
from wan_nb.lora_io import random_lora, wan_shapes, write_lora


def dtypes(path) -> set[torch.dtype]:
    with safe_open(str(path), 'pt') as f: return {f.get_tensor(k).dtype for k in f.keys() if not k.endswith('.alpha')}


def test_slider_dtype_option(tmp_path):
    shapes = wan_shapes(1, 32, 64)
    for name, seed in (('a', 0), ('b', 1)):
        write_lora(random_lora(shapes, rank=4, seed=seed, dtype=torch.bfloat16), tmp_path/f'{name}.safetensors')
    a, b = tmp_path/'a.safetensors', tmp_path/'b.safetensors'
    assert main(['slider', str(a), str(b), '-o', str(tmp_path/'same.safetensors'), '--rank', '2']) == 0
    assert dtypes(tmp_path/'same.safetensors') == {torch.bfloat16}
    for name, dtype in (('fp16', torch.float16), ('fp32', torch.float32)):
        assert main(['slider', str(a), str(b), '-o', str(tmp_path/f'{name}.safetensors'), '--rank', '2', '--dtype', name]) == 0
        assert dtypes(tmp_path/f'{name}.safetensors') == {dtype}
    with safe_open(str(tmp_path/'fp32.safetensors'), 'pt') as f32, safe_open(str(tmp_path/'same.safetensors'), 'pt') as bf:
        for k in bf.keys():  # the same slider, rounded once: bf16 of the fp32 file is the default file
            assert torch.equal(f32.get_tensor(k).to(bf.get_tensor(k).dtype), bf.get_tensor(k))
