"Bad LoRA input is refused up front with a message that names the file and the fix."
import pytest
import torch
from safetensors.torch import save_file

from wan_nb.lora_io import convert_lora, lora_state_dict, merge_lora, random_lora, read_lora, wan_shapes, write_lora
from wan_nb.slider import make_slider


@pytest.fixture
def good(tmp_path):
    return write_lora(random_lora(wan_shapes(2, 48, 96), rank=4, alpha=4.0), tmp_path/'good.safetensors')


def test_loras_for_different_base_models(tmp_path, good):
    big = write_lora(random_lora(wan_shapes(2, 64, 128), rank=4), tmp_path/'big.safetensors', 'musubi')
    with pytest.raises(ValueError, match=r'good.safetensors and .*big.safetensors were made for different base models: 20 layers '
                                         r'differ, e.g. blocks.0.attn1.to_k is \(48, 48\) in the first and \(64, 64\).*same Wan model'):
        make_slider(good, big, tmp_path/'out.safetensors')
    assert not (tmp_path/'out.safetensors').exists()


def test_lora_for_another_model_is_not_merged(tiny_model_dir, good):
    from wan_nb.models import load_wan
    transformer = load_wan(tiny_model_dir, components=('transformer',)).transformer
    with pytest.raises(ValueError, match=r'good.safetensors: layer blocks.0.attn1.to_q is \(64, 64\) in the model but \(48, 48\)'):
        merge_lora(transformer, read_lora(good))


def test_non_lora_keys(tmp_path, tiny_model_dir, good):
    model_file = tiny_model_dir/'transformer'/'diffusion_pytorch_model.safetensors'
    with pytest.raises(ValueError, match='diffusion_pytorch_model.safetensors: no LoRA keys .* not a LoRA file'):
        read_lora(model_file)
    tensors, header = lora_state_dict(read_lora(good), 'comfy')
    save_file({**tensors, 'diffusion_model.blocks.0.self_attn.q.diff_b': torch.zeros(48),
               'diffusion_model.head.head.lora_A.weight': torch.zeros(4, 48)}, tmp_path/'extra.safetensors', metadata=header)
    with pytest.raises(ValueError, match=r'extra.safetensors: 2 keys are not LoRA factors of a Wan block layer.*Fix: use the file'):
        convert_lora(tmp_path/'extra.safetensors', tmp_path/'out.safetensors', 'musubi')
    assert not (tmp_path/'out.safetensors').exists()


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'garbage'])
def test_corrupt_files(tmp_path, good, damage):
    data = good.read_bytes()
    bad = tmp_path/'bad.safetensors'
    bad.write_bytes({'truncated': data[:len(data) // 2], 'empty': b'', 'garbage': b'not a tensor file at all' * 10}[damage])
    with pytest.raises(ValueError, match=r'bad.safetensors: not a readable safetensors file .* download or copy it again'):
        make_slider(bad, good, tmp_path/'out.safetensors')


@pytest.mark.parametrize('name', ['lora.pt', 'lora.ckpt', 'lora.bin', 'renamed.safetensors'])
def test_pickles_are_refused(tmp_path, good, name):
    torch.save(read_lora(good).modules['blocks.0.attn1.to_q'].A, tmp_path/name)
    with pytest.raises(ValueError, match=f"{name}: a pickle checkpoint; wan-nb reads only safetensors.*torch.load"):
        convert_lora(tmp_path/name, tmp_path/'out.safetensors', 'comfy')


def test_unknown_format_and_missing_file(tmp_path, good):
    with pytest.raises(ValueError, match=r"Unknown LoRA format 'kohya'; choose from \('comfy', 'musubi', 'diffusers', 'peft'\)"):
        convert_lora(good, tmp_path/'out.safetensors', 'kohya')
    with pytest.raises(FileNotFoundError, match='nope.safetensors: no such LoRA file'):
        read_lora(tmp_path/'nope.safetensors')
