"""Images, videos and frame folders decode to the pixels a photo viewer or a video player shows: EXIF
orientation, display matrices, non-square pixels, 16-bit, palette, CMYK, greyscale and transparency, 10-bit and
full-range video, animated GIF. Every file is made here (Pillow, numpy, PyAV)."""
import io
import struct
import zlib
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image, ImageCms

from wan_nb.media import (UNREAD_EXTENSIONS, MediaError, ProbeCache, frame_files, is_frame_folder, orient, probe,
                          read_frames, source_frame_indices)

WORDS = {2: 'mirrored left-right', 3: 'rotated 180°', 4: 'mirrored top-bottom',
         5: 'rotated 90° clockwise and mirrored left-right', 6: 'rotated 90° clockwise',
         7: 'rotated 90° counter-clockwise and mirrored left-right', 8: 'rotated 90° counter-clockwise'}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
# where the red (stored top-left) and green (stored top-right) markers are shown, per EXIF orientation
CORNERS = {1: ('top-left', 'top-right'), 2: ('top-right', 'top-left'), 3: ('bottom-right', 'bottom-left'),
           4: ('bottom-left', 'bottom-right'), 5: ('top-left', 'bottom-left'), 6: ('top-right', 'bottom-right'),
           7: ('bottom-right', 'top-right'), 8: ('bottom-left', 'top-left')}


def marked(size=(60, 40)):
    "Blue picture, red block top-left, green block top-right (as stored)."
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[...] = BLUE
    rgb[:12, :12], rgb[:12, -12:] = RED, GREEN
    return rgb


def corner(rgb, where):
    "The colour 5 pixels in from corner `where` of an (h, w, 3) array."
    row, col = where.split('-')
    return tuple(int(v) for v in rgb[5 if row == 'top' else -6, 5 if col == 'left' else -6])


def near(colour, expected, tolerance=40):
    return max(abs(int(a) - int(b)) for a, b in zip(colour, expected)) <= tolerance


def full(path):
    "Frame 0 at its shown size, as a numpy array."
    return read_frames(path, [0])[0].numpy()


# ---- images -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_shows_the_photo_upright(tmp_path, orientation):
    path = tmp_path/f'photo_{orientation}.jpg'
    im = Image.fromarray(marked())
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif, quality=95)
    info = probe(path)
    turned = orientation in (5, 6, 7, 8)
    assert (info.width, info.height) == ((40, 60) if turned else (60, 40))
    if orientation == 1: assert info.corrections == ()
    else: assert info.corrections == (f'{WORDS[orientation]} as the file asks (EXIF orientation {orientation})',)
    rgb = full(path)
    assert rgb.shape == (info.height, info.width, 3)
    red_at, green_at = CORNERS[orientation]
    assert near(corner(rgb, red_at), RED) and near(corner(rgb, green_at), GREEN)
    bucket = read_frames(path, [0], (32, 48) if turned else (48, 32))[0].numpy()  # the bucket follows the shown aspect
    assert near(corner(bucket, red_at), RED)


def test_mirrored_orientations_say_mirrored(tmp_path):
    for n in (2, 4, 5, 7):
        im = Image.fromarray(marked())
        exif = im.getexif()
        exif[0x0112] = n
        im.save(tmp_path/f'{n}.png', exif=exif)
        assert 'mirrored' in probe(tmp_path/f'{n}.png').corrections[0]


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 50000, 65535]], np.uint16).repeat(4, 0)
    Image.fromarray(values).save(tmp_path/'deep.png')
    assert Image.open(tmp_path/'deep.png').mode == 'I;16'
    info = probe(tmp_path/'deep.png')
    assert info.corrections == ('16-bit → 8-bit', 'greyscale → RGB')
    assert full(tmp_path/'deep.png')[0, :, 0].tolist() == [0, 1, 4, 128, 195, 255]


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    rgb48 = np.zeros((4, 8, 3), np.uint16)
    rgb48[...] = (65535, 32896, 12345)
    with av.open(str(tmp_path/'deep_rgb.png'), 'w', format='image2') as c:
        s = c.add_stream('png')
        s.width, s.height, s.pix_fmt = 8, 4, 'rgb48be'
        frame = av.VideoFrame.from_ndarray(rgb48, format='rgb48le')
        frame.pts = 0
        c.mux(s.encode(frame))
        c.mux(s.encode())
    assert probe(tmp_path/'deep_rgb.png').corrections == ('16-bit → 8-bit',)
    got = full(tmp_path/'deep_rgb.png')[0, 0].astype(int)
    assert np.abs(got - np.round(np.array([65535, 32896, 12345]) / 257)).max() <= 1


def test_palette_png_with_transparency_is_laid_over_white(tmp_path):
    rgba = Image.new('RGBA', (16, 8), RED + (255,))
    rgba.paste((0, 0, 0, 0), (8, 0, 16, 8))
    palette = rgba.convert('P')
    palette.save(tmp_path/'sticker.png', transparency=palette.getpixel((12, 0)))
    rgba.convert('RGB').convert('P').save(tmp_path/'flat.png')
    info = probe(tmp_path/'sticker.png')
    assert info.corrections == ('palette → RGB', 'transparency composited on white')
    rgb = full(tmp_path/'sticker.png')
    assert corner(rgb, 'top-left') == RED and corner(rgb, 'top-right') == (255, 255, 255)
    assert probe(tmp_path/'flat.png').corrections == ('palette → RGB',)
    assert corner(full(tmp_path/'flat.png'), 'top-right') == (0, 0, 0)


def test_rgba_png_is_laid_over_white_only_where_transparent(tmp_path):
    rgba = np.zeros((8, 16, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = BLUE, 255
    rgba[:, 8:, 3] = 0
    rgba[:, 4:8, 3] = 128
    Image.fromarray(rgba).save(tmp_path/'cutout.png')
    assert probe(tmp_path/'cutout.png').corrections == ('transparency composited on white',)
    rgb = full(tmp_path/'cutout.png')
    assert rgb[0, [0, 5, 12]].tolist() == [[0, 0, 255], [127, 127, 255], [255, 255, 255]]
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path/'screenshot.png')
    assert probe(tmp_path/'screenshot.png').corrections == ()  # opaque RGBA: nothing to say


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new('CMYK', (16, 8), (0, 255, 255, 0))
    cmyk.paste((0, 0, 0, 255), (8, 0, 16, 8))
    cmyk.save(tmp_path/'print.jpg', quality=95)
    info = probe(tmp_path/'print.jpg')
    assert info.corrections == ('CMYK → RGB',)
    rgb = full(tmp_path/'print.jpg')
    assert near(corner(rgb, 'top-left'), RED, 10) and near(corner(rgb, 'top-right'), (0, 0, 0), 10)


def test_embedded_colour_profile_is_applied(tmp_path):
    "An RGB file whose profile swaps the red and green primaries: what it stores as red is shown green."
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes())
    tags = {bytes(icc[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(int.from_bytes(icc[128:132], 'big'))}
    r, g = tags[b'rXYZ'], tags[b'gXYZ']
    icc[r + 4:r + 12], icc[g + 4:g + 12] = icc[g + 4:g + 12], icc[r + 4:r + 12]
    icc = bytes(icc).replace('sRGB'.encode('utf-16-be'), 'Swap'.encode('utf-16-be'))
    Image.new('RGB', (8, 8), RED).save(tmp_path/'wide.png', icc_profile=icc)
    Image.new('RGB', (8, 8), RED).save(tmp_path/'srgb.png',
                                       icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes())
    assert probe(tmp_path/'wide.png').corrections == ('colour profile "Swap built-in" → sRGB',)
    assert near(corner(full(tmp_path/'wide.png'), 'top-left'), GREEN, 60)
    assert probe(tmp_path/'srgb.png').corrections == () and corner(full(tmp_path/'srgb.png'), 'top-left') == RED


def test_greyscale_and_bilevel_become_rgb(tmp_path):
    Image.new('L', (8, 8), 77).save(tmp_path/'grey.jpg', quality=100)
    Image.new('1', (8, 8), 1).save(tmp_path/'bilevel.png')
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path/'deep.tif')
    assert probe(tmp_path/'grey.jpg').corrections == ('greyscale → RGB',)
    assert near(corner(full(tmp_path/'grey.jpg'), 'top-left'), (77, 77, 77), 2)
    assert probe(tmp_path/'bilevel.png').corrections == ('bilevel (1-bit) → RGB',)
    assert corner(full(tmp_path/'bilevel.png'), 'top-left') == (255, 255, 255)
    assert corner(full(tmp_path/'deep.tif'), 'top-left') == (255, 255, 255)  # TIFF is read, 16-bit scaled


def test_unread_and_degenerate_images_name_the_file_and_the_fix(tmp_path):
    (tmp_path/'IMG_1234.HEIC').write_bytes(b'\0' * 64)
    with pytest.raises(MediaError, match=r'IMG_1234\.HEIC: not read: .*convert it to JPEG or PNG'): probe(tmp_path/'IMG_1234.HEIC')
    assert {'.heic', '.heif', '.jxl', '.svg', '.psd'} <= set(UNREAD_EXTENSIONS)

    def chunk(kind, data): return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    empty = chunk(b'IHDR', struct.pack('>IIBBBBB', 0, 0, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(b''))
    (tmp_path/'empty.png').write_bytes(b'\x89PNG\r\n\x1a\n' + empty + chunk(b'IEND', b''))
    with pytest.raises(MediaError, match=r'empty\.png: unreadable image.*Re-export'): probe(tmp_path/'empty.png')
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path/'whole.png')
    (tmp_path/'cut.png').write_bytes((tmp_path/'whole.png').read_bytes()[:4000])
    with pytest.raises(MediaError, match=r'cut\.png: unreadable image'): probe(tmp_path/'cut.png')
    Image.new('RGB', (1, 1)).save(tmp_path/'dot.png')
    assert (probe(tmp_path/'dot.png').width, probe(tmp_path/'dot.png').height) == (1, 1)  # the plan drops it


# ---- videos -------------------------------------------------------------------------------------------------

def write_clip(path, frames=2, size=(48, 32), matrix=None, rotation=None, sar=None, pix_fmt='yuv420p',
               colour_range=None, picture=None):
    picture = marked(size) if picture is None else picture
    with av.open(str(path), 'w') as c:
        s = c.add_stream('libx264', rate=16, options={'crf': '0'})
        s.width, s.height, s.pix_fmt = *size, pix_fmt
        if matrix is not None: s.set_display_matrix(matrix)
        if rotation is not None: s.set_display_rotation(*rotation)
        if sar: s.codec_context.sample_aspect_ratio = sar
        if colour_range: s.codec_context.color_range = colour_range
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(picture, format='rgb24')
            frame = frame.reformat(format=pix_fmt, dst_color_range=colour_range or 0)
            if colour_range: frame.color_range = colour_range
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


# each orientation as the 2x2 part (a, b, c, d) of an FFmpeg display matrix
MATRICES = {1: (1, 0, 0, 1), 2: (-1, 0, 0, 1), 3: (-1, 0, 0, -1), 4: (1, 0, 0, -1),
            5: (0, 1, 1, 0), 6: (0, 1, -1, 0), 7: (0, -1, -1, 0), 8: (0, -1, 1, 0)}


@pytest.mark.parametrize('orientation', range(1, 9))
def test_display_matrix_turns_and_mirrors_like_a_player(tmp_path, orientation):
    a, b, c, d = (v << 16 for v in MATRICES[orientation])
    path = write_clip(tmp_path/f'm{orientation}.mp4', matrix=[a, b, 0, c, d, 0, 0, 0, 1 << 30])
    info = probe(path)
    turned = orientation in (5, 6, 7, 8)
    assert (info.width, info.height) == ((32, 48) if turned else (48, 32))
    assert info.corrections == (() if orientation == 1 else (f'display matrix: {WORDS[orientation]}',))
    rgb = full(path)
    red_at, green_at = CORNERS[orientation]
    assert near(corner(rgb, red_at), RED) and near(corner(rgb, green_at), GREEN)
    assert np.abs(rgb.astype(int) - orient(marked((48, 32)), orientation)).mean() < 3


def test_phone_rotations_are_named(tmp_path):
    named = {(-90,): 'display matrix: rotated 90° clockwise', (90,): 'display matrix: rotated 90° counter-clockwise',
             (180,): 'display matrix: rotated 180°', (0, True): 'display matrix: mirrored left-right'}
    for i, (rotation, words) in enumerate(named.items()):
        info = probe(write_clip(tmp_path/f'r{i}.mp4', rotation=rotation))
        assert info.corrections == (words,)
    portrait = tmp_path/'r0.mp4'
    assert read_frames(portrait, [0, 1], (32, 48)).shape == (2, 48, 32, 3)
    assert near(corner(read_frames(portrait, [1], (32, 48))[0].numpy(), 'top-right'), RED)


def test_non_square_pixels_are_widened(tmp_path):
    picture = np.zeros((480, 720, 3), np.uint8)
    picture[:, :360], picture[:, 360:] = RED, BLUE
    path = write_clip(tmp_path/'dv.mp4', size=(720, 480), sar=Fraction(32, 27), picture=picture, frames=1)
    info = probe(path)
    assert (info.width, info.height) == (853, 480)
    assert info.corrections == ('non-square pixels (sample aspect 32:27): widened to 853x480',)
    rgb = full(path)
    assert rgb.shape == (480, 853, 3)
    assert near(tuple(rgb[240, 420]), RED) and near(tuple(rgb[240, 433]), BLUE)  # the edge moved to 426
    tall = probe(write_clip(tmp_path/'tall.mp4', size=(72, 48), sar=Fraction(8, 9), frames=1))
    assert (tall.width, tall.height) == (72, 54)


COLOURS = [(0, 0, 0), (255, 255, 255), (64, 64, 64), (200, 30, 30), (30, 160, 60), (128, 64, 200)]


def colour_bars():
    picture = np.zeros((32, 16 * len(COLOURS), 3), np.uint8)
    for i, colour in enumerate(COLOURS): picture[:, 16 * i:16 * (i + 1)] = colour
    return picture


@pytest.mark.parametrize('pix_fmt, colour_range', [('yuv420p10le', None), ('yuv420p', 'JPEG'), ('yuv420p10le', 'JPEG')])
def test_high_bit_depth_and_full_range_colours_are_kept(tmp_path, pix_fmt, colour_range):
    picture = colour_bars()
    path = write_clip(tmp_path/'bars.mp4', size=(picture.shape[1], 32), pix_fmt=pix_fmt, picture=picture,
                      colour_range=colour_range and av.video.reformatter.ColorRange[colour_range])
    info = probe(path)
    assert info.corrections == (('10-bit → 8-bit',) if '10' in pix_fmt else ())
    got = full(path)[16, 8::16].astype(int)
    assert np.abs(got - np.array(COLOURS)).max() <= 4, got.tolist()


def test_animated_gif_is_a_clip_with_its_own_timing(tmp_path):
    frames = []
    for i in range(5):
        im = Image.new('RGBA', (40, 30), (0, 0, 0, 0))
        im.paste(RED + (255,), (i * 5, 0, i * 5 + 10, 10))
        frames.append(im)
    frames[0].save(tmp_path/'loop.gif', save_all=True, append_images=frames[1:], duration=[100, 100, 50, 200, 100],
                   loop=0, disposal=2)
    info = probe(tmp_path/'loop.gif')
    assert (info.kind, info.frames, info.width, info.height) == ('video', 5, 40, 30)
    assert info.timestamps == (0.0, 0.1, 0.2, 0.25, 0.45)
    assert info.corrections == ('transparency composited on white',)
    rgb = read_frames(tmp_path/'loop.gif', [0, 4]).numpy()
    assert corner(rgb[0], 'top-left') == RED and corner(rgb[0], 'bottom-right') == (255, 255, 255)
    assert tuple(rgb[1, 5, 25]) == RED and tuple(rgb[1, 5, 5]) == (255, 255, 255)


# ---- frame folders ------------------------------------------------------------------------------------------

def test_frame_folder_is_a_video_in_natural_order(tmp_path):
    folder = tmp_path/'walk'
    folder.mkdir()
    for k in range(1, 13): Image.new('L', (40, 24), k * 20).save(folder/f'f{k}.png')
    (folder/'.DS_Store').write_bytes(b'\0')
    (folder/'._f1.png').write_bytes(b'\0')  # a macOS resource fork: hidden, not a frame
    assert is_frame_folder(folder) and [p.name for p in frame_files(folder)][:3] == ['f1.png', 'f2.png', 'f3.png']
    info = probe(folder)
    assert (info.kind, info.width, info.height, info.frames, info.fps, info.timestamps) == ('video', 40, 24, 12, None, None)
    assert info.corrections == ('greyscale → RGB',
                                'frames in natural name order (f2.png before f10.png); musubi-tuner sorts them by plain name')
    assert source_frame_indices(info, target_fps=16) == list(range(12))  # no timestamps: taken as 16 fps
    assert source_frame_indices(info, source_fps=32) == list(range(0, 12, 2))
    frames = read_frames(folder, [0, 1, 9, 11], (32, 16))
    assert frames.shape == (4, 16, 32, 3) and frames[:, 8, 8, 0].tolist() == [20, 40, 200, 240]

    probes = ProbeCache(tmp_path/'probes.json')
    assert probes.probe(folder) == info and probes.probe(folder) == info and (probes.hits, probes.misses) == (1, 1)
    Image.new('L', (40, 24), 255).save(folder/'f3.png')
    assert probes.probe(folder).content != info.content and probes.misses == 2  # a changed frame is probed again


def test_frame_folder_frames_are_shown_upright_and_must_match(tmp_path):
    folder = tmp_path/'phone_frames'
    folder.mkdir()
    for k in range(3):
        im = Image.fromarray(marked())
        exif = im.getexif()
        exif[0x0112] = 6
        im.save(folder/f'{k:03d}.jpg', exif=exif, quality=95)
    info = probe(folder)
    assert (info.width, info.height, info.corrections) == (40, 60, ('rotated 90° clockwise as the file asks (EXIF orientation 6)',))
    assert near(corner(read_frames(folder, [2])[0].numpy(), 'top-right'), RED)
    Image.fromarray(marked()).save(folder/'003.jpg')  # one frame not turned: 60x40 among 40x60
    with pytest.raises(MediaError, match=r'003\.jpg: 60x40, but 000\.jpg and the frames before it are 40x60'): probe(folder)
    with pytest.raises(MediaError, match='a folder without image frames'): probe(tmp_path)
