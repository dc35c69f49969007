"""`load_wan(quantization=...)` fills the transformer block by block: each mode stays within a stated tolerance of the
bf16 model, gives exactly the weights of quantising a loaded model, serves every layout, and never holds more than
about one block in the base dtype beside the 8-bit ones."""
import weakref

import pytest
import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from wan_nb.models import load_wan, write_comfy_files, write_official_layout
from wan_nb.quant import QUANT_MODES, Linear8bit, quantize_linears

TOLERANCE = dict(int8=0.01, fp8=0.02, fp8_cast=0.02)  # relative L2 error of the noise prediction vs bf16


def out(tf, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, text = torch.randn(1, 16, 3, 8, 8, generator=g), torch.randn(1, 7, 32, generator=g)
    with torch.no_grad():
        return tf(x.to(tf.dtype), torch.tensor([500.0]), text.to(tf.dtype), return_dict=False)[0].float()


def rel(a, b): return float((a - b).norm() / b.norm())


@pytest.fixture(scope='module')
def comfy(tiny_model_dir, tmp_path_factory):
    return write_comfy_files(tiny_model_dir, tmp_path_factory.mktemp('comfy')/'bf16')


@pytest.fixture(scope='module')
def bf16(comfy):
    return load_wan(comfy, ('transformer',), dtype=torch.bfloat16).transformer


@pytest.mark.parametrize('mode', QUANT_MODES)
def test_each_mode_stays_close_to_bf16_and_equals_quantising_after_loading(comfy, bf16, mode):
    tf = load_wan(comfy, ('transformer',), dtype=torch.bfloat16, quantization=mode).transformer
    linears = [m for m in tf.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 40 and all(type(m) is Linear8bit and m.mode == mode for m in linears)
    assert tf.proj_out.weight.dtype == torch.bfloat16 and type(tf.proj_out) is torch.nn.Linear
    assert rel(out(tf), out(bf16)) < TOLERANCE[mode]
    after = load_wan(comfy, ('transformer',), dtype=torch.bfloat16).transformer
    assert [quantize_linears(b, mode) for b in after.blocks] == [10] * 4
    want = after.state_dict()
    got = tf.state_dict()
    assert list(got) == list(want)
    for n, t in want.items(): assert t.dtype == got[n].dtype and torch.equal(got[n], t), n


def test_official_shards_wan22_experts_and_diffusers_folders_load_quantised(tiny_model_dir, comfy, bf16, tmp_path):
    ref = load_wan(comfy, ('transformer',), dtype=torch.bfloat16, quantization='int8').transformer.state_dict()
    two = write_official_layout(tiny_model_dir, tmp_path/'o22', experts=2, shards=3)
    wan = load_wan(two, ('transformer', 'transformer_2'), dtype=torch.bfloat16, quantization='int8')
    for tf in (wan.transformer, wan.transformer_2):
        for n, t in tf.state_dict().items(): assert torch.equal(ref[n], t), n
    folder = load_wan(tiny_model_dir, ('transformer', 'scheduler'), dtype=torch.bfloat16, quantization='fp8')
    assert type(folder.transformer.blocks[2].ffn.net[2]) is Linear8bit and folder.scheduler is not None
    assert rel(out(folder.transformer), out(bf16)) < TOLERANCE['fp8']
    component = load_wan(tiny_model_dir/'transformer', ('transformer',), dtype=torch.bfloat16, quantization='fp8')
    for n, t in component.transformer.state_dict().items(): assert torch.equal(folder.transformer.state_dict()[n], t)


class LiveBytes(TorchDispatchMode):
    "Bytes of CPU storage allocated by torch ops while active, less those freed since (`now`), and the `peak`."
    def __init__(self):
        super().__init__()
        self.live, self.now, self.peak = {}, 0, 0

    def _free(self, key): self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.set_.source_Storage: return out  # a view of a memory-mapped file
        seen = {t.untyped_storage().data_ptr() for t in pytree.tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor)}
        for t in pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type != 'cpu': continue
            s = t.untyped_storage()
            if s.data_ptr() in seen or s.data_ptr() in self.live or not s.nbytes(): continue
            self.live[s.data_ptr()] = s.nbytes()
            self.now += s.nbytes(); self.peak = max(self.peak, self.now)
            weakref.finalize(s, self._free, s.data_ptr())
        return out


def test_loading_holds_about_one_block_in_the_base_dtype(tiny_model_dir, tmp_path):
    fp16 = write_comfy_files(tiny_model_dir, tmp_path/'fp16', dtype='fp16')  # every tensor is converted: allocated
    with LiveBytes() as streamed:
        tf = load_wan(fp16, ('transformer',), dtype=torch.bfloat16, quantization='int8').transformer
    with LiveBytes() as whole:
        tf2 = load_wan(fp16, ('transformer',), dtype=torch.bfloat16).transformer
        block = sum(t.nbytes for t in tf2.blocks[0].state_dict().values())
        for b in tf2.blocks: quantize_linears(b, 'int8')
    assert streamed.now == whole.now > 0  # both end with the same 8-bit model
    assert streamed.peak - streamed.now < 1.5 * block  # one bf16 block + one Linear's fp32 copy, at most
    assert whole.peak - whole.now > 2 * block  # the measurement sees a whole bf16 model
    del tf, tf2


def test_quantised_blocks_load_in_order_one_at_a_time(comfy, monkeypatch):
    import wan_nb.models
    seen = []
    def spy(block, mode):
        seen.append(block)
        assert all(type(m) is Linear8bit for b in seen[:-1] for m in b.modules() if isinstance(m, torch.nn.Linear))
        assert block.attn1.to_q.weight.device.type == 'cpu' and block.attn1.to_q.weight.dtype == torch.bfloat16
        return quantize_linears(block, mode)
    monkeypatch.setattr(wan_nb.models, 'quantize_linears', spy)
    tf = load_wan(comfy, ('transformer',), dtype=torch.bfloat16, quantization='fp8').transformer
    assert [id(b) for b in seen] == [id(b) for b in tf.blocks]
