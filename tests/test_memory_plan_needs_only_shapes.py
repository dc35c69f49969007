"""The memory plan reads shapes only: headers and configs of the model files, or `model_type` when there are none,
so a run can be checked before its weights are downloaded; and its parameter counts are the model's own."""
import pytest
import torch

from wan_nb.fit import WanShapes, bucket_plan, memory_plan, model_shapes, param_counts, shapes_from_config
from wan_nb.models import WAN_VARIANTS, ModelFileError, _shipped_config, load_component
from wan_nb.train import RunConfig


def test_no_weights_are_read(tiny_model_dir, demo_dir, monkeypatch):
    def refuse(*a, **k): raise AssertionError('the memory plan read weights')
    monkeypatch.setattr(torch, 'load', refuse)
    import safetensors, safetensors.torch
    monkeypatch.setattr(safetensors.torch, 'load_file', refuse)
    monkeypatch.setattr(safetensors, 'safe_open', refuse)
    plan = memory_plan(RunConfig(model=str(tiny_model_dir), dataset=str(demo_dir/'dataset.toml')))
    assert plan.fits and plan.rows and plan.peak.tokens > 0


def test_model_type_stands_in_for_missing_files(tmp_path):
    for variant, (_, experts, _) in WAN_VARIANTS.items():
        s = model_shapes(RunConfig(model=str(tmp_path/'not-downloaded'), model_type=variant))
        assert (s.variant, s.experts) == (variant, experts)
    with pytest.raises(ModelFileError, match='model_type'):
        model_shapes(RunConfig(model=str(tmp_path/'not-downloaded')))


def test_parameter_counts_are_the_models(tiny_model_dir):
    t = load_component(tiny_model_dir, 'transformer')
    s = model_shapes(RunConfig(model=str(tiny_model_dir)))
    assert param_counts(s)['total'] == sum(p.numel() for p in t.parameters())
    n = param_counts(shapes_from_config(_shipped_config('wan2.1-t2v-14b')))
    assert 14.2e9 < n['total'] < 14.4e9


def test_the_14b_needs_8bit_or_swap_on_24gb():
    run = RunConfig(model='/none', model_type='wan2.1-t2v-14b', rank=32, optimizer='adamw8bit')
    bf16 = memory_plan(run, bucket_plan(384, 208, 45))
    assert not bf16.fits and 'blocks_to_swap' in bf16.suggestion
    fp8 = memory_plan(RunConfig(**{**run.__dict__, 'base_quantization': 'fp8', 'blocks_to_swap': 10}),
                      bucket_plan(384, 208, 45))
    assert fp8.fits and fp8.peak.weights < bf16.peak.weights / 2 + 1


def test_suggestion_when_no_knob_is_enough():
    run = RunConfig(model='/none', model_type='wan2.1-t2v-14b', rank=32)
    p = memory_plan(run, bucket_plan(1280, 720, 161), gpu_memory_gb=12)
    assert not p.fits and ('frames' in p.suggestion or 'resolution' in p.suggestion)
