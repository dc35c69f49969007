"The factored slider equals the dense route (form A - B, full SVD, truncate) in error, rank choice and options."
import json

import pytest
import torch

from wan_nb.lora_io import Lora, LoraModule, random_lora, read_lora, wan_shapes, write_lora
from wan_nb.slider import make_slider, reduce_module, slider_lora


def dense_slider(a: Lora, b: Lora, name: str, wa=1.0, wb=1.0) -> torch.Tensor:
    ma, mb = a.modules.get(name), b.modules.get(name)
    shape = (ma or mb).shape
    return ((wa * ma.delta() if ma else torch.zeros(shape)) - (wb * mb.delta() if mb else torch.zeros(shape))).double()


def svdvals(D: torch.Tensor) -> torch.Tensor:
    "Singular values, computed on the tall orientation (MKL's multi-threaded SVD of a wide matrix is 100x slower)."
    return torch.linalg.svdvals(D if D.shape[0] >= D.shape[1] else D.T)


def best_error(D: torch.Tensor, r: int) -> float:
    return float(svdvals(D)[r:].pow(2).sum().sqrt())


def anchors(shapes, ra=8, rb=6, seed=0):
    a = random_lora(shapes, rank=ra, alpha=4.0, seed=seed)
    b = random_lora(shapes, rank=rb, seed=seed + 1)  # no alpha: scale 1
    for n, m in b.modules.items():  # correlated: b shares a's first directions
        m.A[:4] = a.modules[n].A[:4]
    return a, b


@pytest.mark.parametrize('out,inp', [(96, 96), (384, 96), (96, 384), (7, 200)])  # attention, ffn up, ffn down, rank > out
@pytest.mark.parametrize('rank', [1, 4, 9])
def test_same_frobenius_error_as_dense_svd(out, inp, rank):
    a, b = anchors({'blocks.0.ffn.net.0.proj': (out, inp)})
    slider, analysis = slider_lora(a, b, rank=rank, weights=(1.5, 0.7), alpha=2.0)
    D = dense_slider(a, b, 'blocks.0.ffn.net.0.proj', 1.5, 0.7)
    m = slider.modules['blocks.0.ffn.net.0.proj']
    assert m.rank == min(rank, out, 14) and m.alpha == 2.0
    err, best = float((D - m.delta().double()).norm()), best_error(D, m.rank)
    if best > 1e-6 * float(D.norm()): assert abs(err / best - 1) < 1e-4
    else: assert err < 1e-5 * float(D.norm())  # the rank covers the whole delta: exact
    stats = analysis['modules']['blocks.0.ffn.net.0.proj']
    s = svdvals(D)
    torch.testing.assert_close(torch.tensor(stats['singular_values']), s[:len(stats['singular_values'])].float(), rtol=1e-4, atol=1e-4)
    assert abs(stats['retained_energy'] - float(s[:m.rank].pow(2).sum() / s.pow(2).sum())) < 1e-5
    assert abs(stats['norm'] - float(D.norm())) < 1e-4 * float(D.norm())


def test_energy_picks_the_smallest_rank_keeping_the_fraction():
    a, b = anchors(wan_shapes(2, 48, 96))
    slider, analysis = slider_lora(a, b, energy=0.8)
    for name, m in slider.modules.items():
        s2 = svdvals(dense_slider(a, b, name)).pow(2)
        kept = torch.cumsum(s2, 0) / s2.sum()
        assert m.rank == int((kept < 0.8).sum()) + 1
        assert analysis['modules'][name]['retained_energy'] >= 0.8
    assert slider.metadata['ss_network_dim'] == 'Dynamic' or len({m.rank for m in slider.modules.values()}) == 1


def test_modules_in_one_input_only_count_as_zero_in_the_other():
    a, b = anchors(wan_shapes(2, 48, 96))
    b = Lora({n: m for n, m in b.modules.items() if not n.startswith('blocks.1.')})
    a = Lora({n: m for n, m in a.modules.items() if n != 'blocks.0.attn2.to_k'})
    slider, analysis = slider_lora(a, b, rank=16)
    assert len(slider.modules) == 20
    for name in ('blocks.1.ffn.net.2', 'blocks.0.attn2.to_k', 'blocks.0.attn1.to_q'):
        torch.testing.assert_close(slider.modules[name].delta().double(), dense_slider(a, b, name), rtol=0, atol=1e-4)
    assert analysis['modules']['blocks.0.attn2.to_k']['rank_a'] == 0 and analysis['modules']['blocks.1.ffn.net.2']['rank_b'] == 0


def test_targets_blocks_and_non_targeted_modules():
    shapes = wan_shapes(4, 48, 96)
    a, b = anchors(shapes)
    excluded = slider_lora(a, b, target='attn', blocks='0-1,3')[0]
    assert sorted(excluded.modules) == sorted(n for n in shapes if '.attn' in n and not n.startswith('blocks.2.'))
    zeroed = slider_lora(a, b, target=['self_attn', r'ffn\.2$'], blocks='2', non_targeted='zero', rank=3)[0]
    assert sorted(zeroed.modules) == sorted(shapes)
    live = {n for n, m in zeroed.modules.items() if m.delta().abs().sum() > 0}
    assert live == {n for n in shapes if n.startswith('blocks.2.') and ('.attn1.' in n or n.endswith('ffn.net.2'))}
    assert {m.rank for m in zeroed.modules.values()} == {3}


def test_clamp_quantile_clamps_both_factors_like_sd_scripts():
    g = torch.Generator().manual_seed(0)
    U, V = torch.randn(200, 12, generator=g), torch.randn(12, 150, generator=g)
    U[0, 0] = 50.0  # an outlier
    B, A, alpha, _ = reduce_module(U, V, rank=4)
    Bc, Ac, _, _ = reduce_module(U, V, rank=4, clamp_quantile=0.99)
    hi = torch.quantile(torch.cat([B.flatten(), A.flatten()]), 0.99)
    torch.testing.assert_close(Bc, B.clamp(-hi, hi)); torch.testing.assert_close(Ac, A.clamp(-hi, hi))
    assert Bc.abs().max() < B.abs().max()


def test_make_slider_files_analysis_and_figure(tmp_path):
    a, b = anchors(wan_shapes(3, 48, 96))
    write_lora(a, tmp_path/'a.safetensors', 'musubi'); write_lora(b, tmp_path/'b', 'peft')
    summary = make_slider(tmp_path/'a.safetensors', tmp_path/'b', tmp_path/'s.safetensors', to='diffusers', rank=2, alpha=1.0,
                          target='cross_attn', analyze=tmp_path/'s.json')
    slider = read_lora(tmp_path/'s.safetensors')
    assert len(slider.modules) == 12 and {m.alpha for m in slider.modules.values()} == {1.0}
    options = json.loads(slider.metadata['wan_nb.slider'])
    assert options['a'] == str(tmp_path/'a.safetensors') and options['target'] == 'cross_attn' and options['rank'] == 2
    analysis = json.loads((tmp_path/'s.json').read_text())
    assert analysis['summary'] == {k: summary[k] for k in analysis['summary']}
    assert set(analysis['modules']) == set(slider.modules) and (tmp_path/'s.png').read_bytes()[:4] == b'\x89PNG'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.safetensors', 'b', 's.json', 's.png', 's.safetensors']


def test_same_result_whatever_the_thread_count():
    a, b = anchors(wan_shapes(2, 48, 96))
    before = torch.get_num_threads()
    results = []
    for n in (1, 2):
        torch.set_num_threads(n)
        results.append(slider_lora(a, b, rank=3)[0])
    torch.set_num_threads(before)
    for name, m in results[0].modules.items():
        assert torch.equal(m.A, results[1].modules[name].A) and torch.equal(m.B, results[1].modules[name].B)
    assert torch.get_num_threads() == before


def nearly_equal_anchors(shapes, change=1e-2):
    "Two bf16 anchors from one initialisation: b's factors are a's plus a change 100x smaller (the slider recipe's pair)."
    a = random_lora(shapes, rank=8, alpha=8.0, seed=0, dtype=torch.bfloat16)
    c = random_lora(shapes, rank=8, seed=1, dtype=torch.bfloat16).modules
    b = Lora({n: LoraModule(n, m.A + change * c[n].A, m.B + change * c[n].B, 8.0) for n, m in a.modules.items()})
    return a, b


def test_a_small_difference_of_nearly_equal_anchors_is_exact():
    "The shared part is taken out of the factors first: without that, fp32 loses the difference's last digits (8e-6 here)."
    a, b = nearly_equal_anchors(wan_shapes(1, 256, 512))
    slider, _ = slider_lora(a, b, rank=16, dtype=torch.float32)  # rank 16 holds the whole difference
    exact = lambda m: (m.B.double() @ m.A.double()) * m.scale
    for name, m in slider.modules.items():
        D = exact(a.modules[name]) - exact(b.modules[name])
        assert float((D - m.delta().double()).norm()) < 1e-6 * float(D.norm()), name
