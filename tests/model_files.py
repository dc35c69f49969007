"Model files for the checkpoint tests: real Wan shapes written cheaply, and the tiny model in every layout."
import json
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import WanTransformer3DModel

from wan_nb.models import _original_name, _shipped_config

_ST = {torch.bfloat16: 'BF16', torch.float16: 'F16', torch.float32: 'F32', torch.float8_e4m3fn: 'F8_E4M3'}


def header_only_safetensors(path: Path, shapes: dict, dtype=torch.bfloat16) -> Path:
    "A valid safetensors file of zeros with these {name: shape}: the header, then a sparse body (no disk, no time)."
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = torch.Size(shape).numel() * dtype.itemsize
        header[name] = {'dtype': _ST[dtype], 'shape': list(shape), 'data_offsets': [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b' ' * (-len(raw) % 8)
    with open(path, 'wb') as f:
        f.write(len(raw).to_bytes(8, 'little') + raw)
        f.truncate(8 + len(raw) + offset)
    return Path(path)


def release_shapes(variant: str, blocks: int, prefix: str = 'model.diffusion_model.') -> dict:
    "{original (ComfyUI) key: shape} of a Wan release's transformer cut to `blocks` blocks."
    with init_empty_weights():
        model = WanTransformer3DModel.from_config({**_shipped_config(variant), 'num_layers': blocks})
    return {prefix + _original_name(k): tuple(v.shape) for k, v in model.state_dict().items()}
