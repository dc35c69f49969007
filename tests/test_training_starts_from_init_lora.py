"""init_lora: a run starts exactly where another run's LoRA ended (the two-stage recipe); a contradicting rank is refused."""
import pytest
import torch
from peft import get_peft_model_state_dict

from wan_nb.train import Trainer, load_run_config


def config(model, dataset, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), max_train_steps=2, **kw))


def test_init_lora_starts_at_the_source_lora(tiny_model_dir, images_dataset, tmp_path):
    source = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'stage1', rank=2, learning_rate=1e-3), progress=False)
    final = source.train()
    with pytest.raises(ValueError, match=r"init_lora has rank 2, but the run config sets rank = 4"):
        Trainer(config(tiny_model_dir, images_dataset, tmp_path/'bad', rank=4, init_lora=str(final/'lora.safetensors')),
                progress=False).train()
    stage2 = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'stage2', init_lora=str(final)), progress=False)
    stage2._check_model(); stage2._setup_data(); stage2._setup_model()
    assert stage2.config.rank == 2
    a, b = get_peft_model_state_dict(source.transformer), get_peft_model_state_dict(stage2.transformer)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 16, 1, 8, 8, generator=g), torch.randn(1, 512, 32, generator=g)
    with torch.no_grad():
        outs = [t.transformer.eval()(hidden_states=x, timestep=torch.tensor([600.0]), encoder_hidden_states=text, return_dict=False)[0]
                for t in (source, stage2)]
    assert torch.equal(*outs)  # the same model: step 0 of stage 2 scores what stage 1 ended with
    assert list(stage2.init_lora_metadata()) == ['wan_nb.init_lora'] and 'lora.safetensors' in stage2.init_lora_metadata()['wan_nb.init_lora']
