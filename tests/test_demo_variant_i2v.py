"`wan-nb demo --variant i2v-2.2` trains an image-to-video LoRA on the demo clips and previews from a demo still."
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from mlflow import MlflowClient

from wan_nb.core import repo_root
from wan_nb.demo_data import demo_inputs
from wan_nb.plan import plan_dataset
from wan_nb.sample import parse_prompt_file

WAN_NB = str(Path(sys.executable).parent/'wan-nb')


def checkout(root: Path, demo_dir: Path) -> Path:
    "A folder the CLI takes for the repository (WAN_NB_ROOT): the training job and the demo clips, nothing else."
    (root/'pyproject.toml').write_text('[project]\nname = "wan-nb"\n')
    (root/'nbs'/'jobs').mkdir(parents=True)
    (root/'nbs'/'jobs'/'train_lora.ipynb').symlink_to(repo_root()/'nbs'/'jobs'/'train_lora.ipynb')
    shutil.copytree(demo_dir, root/'data'/'demo', ignore=shutil.ignore_patterns('cache'))  # as `demo` writes it
    return root


def test_the_i2v_demo_trains_on_clips_and_previews_from_a_still(tmp_path, demo_dir):
    root = checkout(tmp_path, demo_dir)
    r = subprocess.run([WAN_NB, 'demo', '--variant', 'i2v-2.2', '--steps', '10'], capture_output=True, text=True,
                       env={**os.environ, 'WAN_NB_ROOT': str(root)}, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run_id = re.search(r'run (\w+): FINISHED', r.stdout).group(1)
    client = MlflowClient()
    params = client.get_run(run_id).data.params
    assert (params['variant'], params['model']) == ('i2v-2.2', 'data/tiny-wan-i2v-2.2')  # recorded relative to the checkout
    assert [m.step for m in client.get_metric_history(run_id, 'val/loss')] == [0, 10]
    items = plan_dataset(root/params['dataset'], progress=False).items
    assert {i.kind for i in items} == {'video'} and min(i.frames for i in items) > 1  # clips only: no stills
    assert {i.split for i in items} == {'train', 'val'}
    still = str(root/'data'/'demo'/'images'/'still_00.png')
    assert [s.image for s in parse_prompt_file(root/params['sample_prompts'])] == [still] and still in r.stdout
    previews = sorted((root/'runs'/'lora'/run_id/'previews').glob('step_*/*.mp4'))
    assert previews and f"previews: {previews[-1].parents[1]}" in r.stdout


def test_i2v_demo_inputs_condition_the_prompt_on_a_demo_still(tmp_path, demo_dir):
    data = checkout(tmp_path, demo_dir)/'data'
    inputs = demo_inputs(data, 'i2v-2.2')
    assert inputs.built == ('model', 'dataset', 'dataset_val', 'prompts')  # the clips and stills were there
    line = inputs.prompts.read_text()
    assert ' --i images/' in line  # relative to the prompt file, as musubi-tuner writes it
    image = Path(parse_prompt_file(inputs.prompts)[0].image)
    assert image.is_file() and image.parent == data/'demo'/'images'
    val = tomllib.loads(inputs.dataset_val.read_text())
    assert val['general']['validation_split'] == 0.25
    assert all('video_directory' in d and min(d['target_frames']) > 1 for d in val['datasets'])
    assert demo_inputs(data, 'i2v-2.2').built == ()
