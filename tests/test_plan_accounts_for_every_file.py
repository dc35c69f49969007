"""Every file of a dataset folder has its line in the plan: trained (with what was corrected), dropped with its
reason, or ignored with its reason; captions are cleaned and long ones are listed with what the encoder cuts."""
import json

import numpy as np
import pytest
from PIL import Image

from wan_nb.demo_data import write_clip
from wan_nb.media import ProbeCache
from wan_nb.models import tiny_tokenizer
from wan_nb.plan import plan_dataset, plan_dict, write_plan_json

LONG = ' '.join(['a red circle rises slowly over a blue background'] * 60) + ' and then it fades'


def still(path, size=(96, 64), colour='red', caption=None):
    Image.new('RGB', size, colour).save(path)
    if caption is not None: path.with_suffix('.txt').write_text(caption)


@pytest.fixture
def folder(tmp_path):
    "A stills folder as users have it: good stills, messy captions, strays of every kind."
    s = tmp_path/'stills'
    s.mkdir()
    still(s/'good.png', caption='a red still')
    (s/'bom.png').write_bytes((s/'good.png').read_bytes()); (s/'bom.txt').write_bytes('\ufeffa still, from Notepad'.encode())
    still(s/'mixed.png'); (s/'mixed.txt').write_bytes(b'a still\r\nedited on two systems\nand saved')
    still(s/'bell.png'); (s/'bell.txt').write_text('a still\x07 with a bell')
    still(s/'wordy.png', caption=LONG)
    phone = Image.new('RGB', (96, 64), 'green')
    exif = phone.getexif(); exif[0x0112] = 6
    phone.save(s/'phone.jpg', exif=exif); (s/'phone.txt').write_text('a phone photo')
    still(s/'icon.png', size=(12, 9), caption='an icon')  # smaller than the smallest bucket
    still(s/'pixel.png', size=(1, 1), caption='one pixel')
    (s/'empty.png').write_bytes(b''); (s/'empty.txt').write_text('never copied')
    # strays
    for name in ('.DS_Store', 'Thumbs.db', 'desktop.ini', '._good.png'): (s/name).write_bytes(b'\0\0')
    (s/'notes.pdf').write_bytes(b'%PDF-1.4')
    (s/'orphan.txt').write_text('a caption whose still was deleted')
    (s/'photo.heic').write_bytes(b'\0\0\0\x18ftypheic'); (s/'photo.txt').write_text('an iPhone photo')
    write_clip(s/'clip.mp4', [np.zeros((48, 64, 3), np.uint8)] * 5, 16)
    (s/'old.png').symlink_to(tmp_path/'moved_away.png')
    (s/'rejects').mkdir(); still(s/'rejects'/'worse.png', caption='worse')
    (tmp_path/'dataset.toml').write_text('[general]\nenable_bucket = true\n'
                                         '[[datasets]]\nimage_directory = "stills"\nresolution = [64, 64]\n')
    return s


def plan(tmp_path, **kw):
    return plan_dataset(tmp_path/'dataset.toml', ProbeCache(tmp_path/'probes.json'), progress=False, **kw)


def test_every_file_is_trained_dropped_or_ignored(tmp_path, folder):
    p = plan(tmp_path)
    trained = {i.source for i in p.items}
    dropped = {d.source for d in p.dropped}
    ignored = {i.path for i in p.ignored}
    assert trained == {f'stills/{n}' for n in ('good.png', 'bom.png', 'mixed.png', 'bell.png', 'wordy.png', 'phone.jpg')}
    assert dropped == {'stills/icon.png', 'stills/pixel.png', 'stills/empty.png'}
    media = {s.split('/')[1].rsplit('.', 1)[0] for s in trained | dropped}
    for f in folder.iterdir():
        name = f'stills/{f.name}'
        if f.name.startswith('.') or f.name in ('Thumbs.db', 'desktop.ini'): continue  # counted below
        accounted = name in trained | dropped | ignored or f'{name}/' in ignored or (f.suffix == '.txt' and f.stem in media)
        assert accounted, f'{name} is not in the plan'
    hidden = [i for i in p.ignored if i.path == 'stills/']
    assert len(hidden) == 1 and hidden[0].reason.startswith('4 hidden or system file(s) (')


def test_each_ignored_file_says_why(tmp_path, folder):
    why = {i.path: i.reason for i in plan(tmp_path).ignored}
    assert why['stills/notes.pdf'].startswith('.pdf: not read; the folder\'s datasets read .png, .jpg')
    assert why['stills/photo.heic'].startswith('.heic: not read: Pillow cannot decode HEIC')
    assert why['stills/photo.txt'] == 'the caption of photo.heic, which is not read (see its line).'
    assert why['stills/orphan.txt'].startswith('a caption without a media file')
    assert why['stills/clip.mp4'].startswith('a video, and no video dataset reads this folder')
    assert why['stills/old.png'].startswith(f'a broken link (to {tmp_path}/moved_away.png')
    assert why['stills/rejects/'].startswith('a subfolder (2 files): like musubi-tuner, wan-nb reads only the files '
                                              'directly in stills/, not its subfolders')


def test_degenerate_inputs_are_dropped_with_their_reason(tmp_path, folder):
    why = {d.source: d.reason for d in plan(tmp_path).dropped}
    assert why['stills/icon.png'].startswith('stills/icon.png: 12x9 is smaller than the smallest bucket (16 pixels a side')
    assert why['stills/pixel.png'].startswith('stills/pixel.png: 1x1 is smaller than the smallest bucket')
    assert why['stills/empty.png'].startswith('stills/empty.png: an empty file (0 bytes)')


def test_captions_are_cleaned_and_corrections_listed(tmp_path, folder):
    p = plan(tmp_path)
    captions = {i.source: i.caption for i in p.items}
    assert captions['stills/bom.png'] == 'a still, from Notepad'
    assert captions['stills/mixed.png'] == 'a still\nedited on two systems\nand saved'
    assert captions['stills/bell.png'] == 'a still with a bell'
    assert {(c.source, c.correction) for c in p.corrected} == {
        ('stills/bom.png', 'caption bom.txt: byte-order mark removed'),
        ('stills/mixed.png', 'caption mixed.txt: line endings CRLF and LF made LF'),
        ('stills/bell.png', 'caption bell.txt: control characters U+0007 removed'),
        ('stills/phone.jpg', 'rotated 90° clockwise as the file asks (EXIF orientation 6)')}
    assert [(i.width, i.height) for i in p.items if i.source == 'stills/phone.jpg'] == [(48, 80)]  # upright: tall


def test_long_captions_are_listed_with_the_tokenizer(tmp_path, folder):
    tok = tiny_tokenizer()
    p = plan(tmp_path, tokenizer=tok)
    [long] = p.long_captions
    ids = tok(LONG).input_ids
    assert (long.source, long.tokens) == ('stills/wordy.png', len(ids)) and len(ids) > 512
    assert long.cut == tok.decode(ids[511:-1]) and long.cut.endswith('and then it fades')
    assert 'Captions over 512 tokens' in str(p) and 'stills/wordy.png' in str(p)
    without = plan(tmp_path)
    assert without.long_captions is None
    assert str(without).count('Captions were not counted in UMT5 tokens') == 1


def test_the_json_plan_carries_every_list(tmp_path, folder):
    p = plan(tmp_path, tokenizer=tiny_tokenizer())
    d = json.loads(write_plan_json(p, tmp_path/'plan.json').read_text())
    assert d == json.loads(json.dumps(plan_dict(p)))
    assert {i['path'] for i in d['ignored']} == {i.path for i in p.ignored}
    assert set(d['ignored'][0]) == {'dataset', 'path', 'reason'} and set(d['corrected'][0]) == {'dataset', 'source', 'correction'}
    assert d['long_captions'][0]['source'] == 'stills/wordy.png'
    text = str(p)
    for section in ('**Dropped**', '**Ignored', '**Corrected', '**Captions over 512 tokens'): assert section in text
    assert text.splitlines()[0].endswith(f'3 dropped, {len(p.ignored)} ignored, 4 corrected.')


def test_plan_command_counts_tokens_with_the_runs_tokenizer(tmp_path, folder, tiny_model_dir, capsys):
    "In-process (`main`): `wan-nb plan CONFIG --run RUN.toml` loads the run model's tokenizer and lists long captions."
    from wan_nb.cli import main
    run = tmp_path/'run.toml'
    run.write_text(f'model = "{tiny_model_dir}"\ndataset = "{tmp_path/"dataset.toml"}"\n')
    assert main(['plan', str(tmp_path/'dataset.toml'), '--run', str(run), '--json', str(tmp_path/'plan.json')]) == 0
    out = capsys.readouterr().out
    assert 'Captions over 512 tokens' in out and 'not counted' not in out and '**Memory plan**' in out
    assert json.loads((tmp_path/'plan.json').read_text())['long_captions'][0]['source'] == 'stills/wordy.png'
