"Prompt files in musubi-tuner's format give the previews they ask for, and bad lines stop the run up front with the line and the fix."
import warnings

import pytest

from wan_nb.sample import PromptFileError, PromptSpec, parse_prompt_file


def write(tmp_path, text, name='prompts.txt'):
    f = tmp_path/name
    f.write_text(text, encoding='utf-8')
    return f


def test_musubi_example_file(tmp_path):
    f = write(tmp_path, '\ufeff# prompt 1: for generating a cat video\n'
                        'A cat walks on the grass, realistic style. --w 640 --h 480 --f 25 --d 1 --s 20\n'
                        '\n   \n'
                        '# prompt 2\n'
                        'A dog runs on the beach. --W 960 --H 544 --F 1 --D 2 --S 20 --L 6.0 --N ugly, blurry --FS 5\n'
                        'a bird  \n')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # nothing here needs rounding
        specs = parse_prompt_file(f)
    assert specs == [PromptSpec('A cat walks on the grass, realistic style.', 640, 480, 25, 1, 20),
                     PromptSpec('A dog runs on the beach.', 960, 544, 1, 2, 20, 6.0, 'ugly, blurry', 5.0),
                     PromptSpec('a bird')]


def test_defaults_fit_wan():
    d = PromptSpec('x')
    assert d.width % 16 == 0 and d.height % 16 == 0 and (d.frames - 1) % 4 == 0
    assert (d.guidance, d.guidance_2, d.flow_shift, d.negative_prompt) == (5.0, None, None, None)  # None: Wan's negative prompt


def test_sizes_and_frames_are_rounded_down_and_said(tmp_path):
    f = write(tmp_path, '# c\na cat --w 650 --h 481 --f 24\n')
    with pytest.warns(UserWarning, match=r'prompts.txt:2: 650x481, 24 frames rounded down to 640x480, 21 frames'):
        (spec,) = parse_prompt_file(f)
    assert (spec.width, spec.height, spec.frames) == (640, 480, 21)


def test_embedded_guidance_is_ignored_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match='--g ignored'):
        (spec,) = parse_prompt_file(write(tmp_path, 'a cat --g 6.0 --l 4\n'))
    assert spec.guidance == 4.0


@pytest.mark.parametrize('line, message', [
    ('a dog --h tall', "--h 'tall' is not an integer; write e.g. --h 288"),
    ('a dog --l much', "--l 'much' is not a number; write e.g. --l 5.0"),
    ('a dog --q 3', 'unknown option --q. The options are --w --h --f --d --s --l --n --fs'),
    ('a dog --n', '--n has no value; write e.g. --n blurry, static'),
    ('a dog --f 0', '--f 0 is below 1'),
    ('a dog --s 0', '--s 0 is below 1'),
    ('a dog --h 8', '--h 8 is below 16'),
    ('a dog --fs 0', '--fs 0 is below 0.01'),
    ('a dog --s 4 --s 8', '--s is given twice; keep one'),
    ('--w 512 --h 288', 'no prompt before the options'),
    ('a dog --i start.png', '--i start.png: no such image'),
    ('a dog --ei end.png', '--ei gives an end image, which wan-nb previews do not support'),
    ('a dog --cn control.mp4', 'Remove --cn from the line'),
])
def test_bad_line_names_file_line_and_fix(tmp_path, line, message):
    f = write(tmp_path, f'# header\na cat\n\n{line}\n')
    with pytest.raises(PromptFileError) as e: parse_prompt_file(f)
    assert str(e.value).startswith(f'{f}:4: ') and message in str(e.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(PromptFileError, match='no prompts'): parse_prompt_file(write(tmp_path, '# nothing\n\n'))
    with pytest.raises(FileNotFoundError, match='no such prompt file'): parse_prompt_file(tmp_path/'missing.txt')
