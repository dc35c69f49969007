"""`--set key=value` texts and papermill/TOML values are read by each RunConfig field's declared type: booleans are
booleans (`--set gradient_checkpointing=False` used to give the truthy string 'False'), and a value of the wrong
type is refused with the field, the value and the expected type."""
import pytest

from wan_nb.train import RunConfig, load_run_config, parse_option


@pytest.mark.parametrize('text, value', [('False', False), ('false', False), ('0', False), ('no', False),
                                         ('True', True), ('true', True), ('1', True), ('yes', True)])
def test_set_booleans_are_booleans(text, value):
    cfg = load_run_config(overrides=[f'gradient_checkpointing={text}'])
    assert cfg.gradient_checkpointing is value


def test_set_values_follow_the_field_types():
    cfg = load_run_config(overrides=['rank=8', 'learning_rate=5e-5', 'alpha=none', 'checkpoint_every_n_steps=None',
                                     'adam_betas=0.9,0.99', 'validation_timesteps=[0.25, 0.75]', 'blocks=0-9,20',
                                     'name=5', 'timestep_sampling="uniform"', 'max_grad_norm=0'])
    assert (cfg.rank, cfg.learning_rate, cfg.alpha, cfg.checkpoint_every_n_steps) == (8, 5e-5, None, None)
    assert cfg.adam_betas == (0.9, 0.99) and cfg.validation_timesteps == [0.25, 0.75]
    assert (cfg.blocks, cfg.name, cfg.timestep_sampling) == ('0-9,20', '5', 'uniform')
    assert isinstance(cfg.max_grad_norm, float) and cfg.max_grad_norm == 0.0


@pytest.mark.parametrize('option, expected', [('rank=four', 'rank=four: rank takes an int'),
                                              ('gradient_checkpointing=maybe', 'takes a bool (true/false/1/0/yes/no)'),
                                              ('learning_rate=fast', 'learning_rate takes a float'),
                                              ('rank=none', 'rank takes an int'),
                                              ('adam_betas=0.9', 'adam_betas takes 2 numbers')])
def test_a_wrong_type_names_the_field_the_value_and_the_type(option, expected):
    with pytest.raises(ValueError, match=expected.replace('(', r'\(').replace(')', r'\)')):
        load_run_config(overrides=[option])


def test_dict_values_are_type_checked_the_same_way():
    cfg = load_run_config(overrides=dict(rank=4, learning_rate=1, adam_betas=[0.9, 0.99], gradient_checkpointing='False',
                                         checkpoint_every_n_steps=None))
    assert (cfg.rank, cfg.learning_rate, cfg.adam_betas, cfg.gradient_checkpointing) == (4, 1.0, (0.9, 0.99), False)
    assert cfg.checkpoint_every_n_steps is None
    for bad, expected in [(dict(rank=2.5), 'rank = 2.5: rank takes an int'), (dict(rank=True), 'rank takes an int'),
                          (dict(name=5), 'name takes a string'), (dict(gradient_checkpointing=1.5), 'takes a bool')]:
        with pytest.raises(ValueError, match=expected):
            load_run_config(overrides=bad)


def test_toml_values_are_type_checked(tmp_path):
    (tmp_path/'run.toml').write_text('rank = "8"\ngradient_checkpointing = true\nlearning_rate = 1\n')
    cfg = load_run_config(tmp_path/'run.toml')
    assert (cfg.rank, cfg.gradient_checkpointing, cfg.learning_rate) == (8, True, 1.0)
    (tmp_path/'bad.toml').write_text('max_train_steps = 10.5\n')
    with pytest.raises(ValueError, match='max_train_steps = 10.5: max_train_steps takes an int'):
        load_run_config(tmp_path/'bad.toml')


def test_parse_option_and_the_repr():
    assert parse_option('sample_every_n_steps', 'null') is None
    with pytest.raises(ValueError, match='unknown option'):
        parse_option('learnig_rate', '1')
    assert repr(RunConfig()) == 'RunConfig()'
    assert repr(RunConfig(rank=8, gradient_checkpointing=True)) == 'RunConfig(rank=8, gradient_checkpointing=True)'
    assert '| rank | `8` | `16` |' in RunConfig(rank=8)._repr_markdown_()
