"""PreviewMaker against real FFmpeg on media made by FFmpeg: what it promises, checked by
probing its outputs (codecs, sizes, pixel format, faststart, key-frame spacing)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pipelines.media.errors import BadMedia
from pipelines.media.previews import PreviewMaker
from pipelines.media.recipes import ProxyOptions
from tests.support.ffmpeg_media import (
    box_order,
    decodes,
    ffmpeg,
    keyframe_gaps,
    make_audio,
    make_clip,
    make_image,
    mean_luma,
    streams,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def maker() -> PreviewMaker:
    return PreviewMaker(proxy=ProxyOptions(preset="ultrafast"))


def _video(path: Path) -> dict:
    (video,) = streams(path, "video")
    return video


def _assert_browser_proxy(proxy: Path, *, width: int, height: int) -> None:
    video = _video(proxy)
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == (width, height)
    assert width % 2 == 0 and height % 2 == 0 and width <= 1920
    order = box_order(proxy)
    assert order.index("moov") < order.index("mdat"), order  # +faststart
    gaps = keyframe_gaps(proxy)
    assert gaps and max(gaps) <= 12, gaps
    assert decodes(proxy)


async def test_clip_with_audio_gets_poster_filmstrip_and_aac_proxy(maker, tmp_path):
    source = make_clip(tmp_path / "shot.mp4", seconds=2, audio=True)
    made = await maker.make(source, tmp_path / "out", "video")

    assert made.kind == "video"
    summary = made.probe
    assert (summary.width, summary.height, summary.video_codec) == (320, 180, "h264")
    assert summary.audio_codec == "aac" and summary.frames == 48
    assert summary.fps == pytest.approx(24) and summary.duration_s == pytest.approx(2, abs=0.1)
    _assert_browser_proxy(made.proxy, width=320, height=180)
    (audio,) = streams(made.proxy, "audio")
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    assert _video(made.poster)["codec_name"] == "mjpeg"
    assert (_video(made.poster)["width"], _video(made.poster)["height"]) == (320, 180)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "filmstrip.jpg", "poster.jpg", "proxy.mp4"]  # no partial files left


async def test_filmstrip_sprite_matches_its_geometry(maker, tmp_path):
    source = make_clip(tmp_path / "shot.mov", seconds=4, rate=25)
    made = await maker.make(source, tmp_path / "out", "video")
    geometry = made.filmstrip_geometry

    assert (geometry.count, geometry.columns, geometry.rows) == (20, 10, 2)
    assert (geometry.tile_width, geometry.tile_height) == (160, 90)
    assert geometry.interval_s == pytest.approx(0.2)
    sprite = _video(made.filmstrip)
    assert (sprite["width"], sprite["height"]) == (1600, 180)
    assert geometry.tile_at(3.9) == (19, 9 * 160, 90)
    assert made.as_dict()["filmstrip"]["width"] == 1600
    assert mean_luma(made.filmstrip) > 40  # the last row was filled, not left black


async def test_clip_without_audio_gets_proxy_without_audio(maker, tmp_path):
    made = await maker.make(make_clip(tmp_path / "silent.mp4"), tmp_path / "out", "video")
    assert made.probe.has_audio is False
    assert streams(made.proxy, "audio") == []
    _assert_browser_proxy(made.proxy, width=320, height=180)


async def test_odd_dimensions_give_an_even_proxy(maker, tmp_path):
    source = make_clip(tmp_path / "odd.mkv", size="321x181", pix_fmt="yuv444p", codec="ffv1")
    made = await maker.make(source, tmp_path / "out", "video")
    assert (made.probe.width, made.probe.height) == (321, 181)
    assert (made.probe.video_codec, made.probe.pix_fmt) == ("ffv1", "yuv444p")
    _assert_browser_proxy(made.proxy, width=320, height=180)


async def test_wide_clip_is_scaled_to_1920(maker, tmp_path):
    source = make_clip(tmp_path / "wide.mp4", size="2560x1080", seconds=1, rate=6)
    made = await maker.make(source, tmp_path / "out", "video")
    _assert_browser_proxy(made.proxy, width=1920, height=810)
    assert made.filmstrip_geometry.tile_height == 68  # 160 / (2560/1080), even


async def test_keyframe_interval_holds_at_the_default_preset(tmp_path):
    source = make_clip(tmp_path / "long.mp4", seconds=4, rate=30)
    made = await PreviewMaker().make(source, tmp_path / "out", "video")  # preset veryfast
    assert "veryfast" in made.commands[-2]
    gaps = keyframe_gaps(made.proxy)
    assert max(gaps) <= 12 and len(gaps) >= 9, gaps


async def test_mp4_holding_only_sound_is_previewed_as_audio(maker, tmp_path):
    source = make_audio(tmp_path / "voice.m4a", seconds=2)
    moved = source.rename(tmp_path / "voice.mp4")
    made = await maker.make(moved, tmp_path / "out", "video")
    assert made.kind == "audio" and made.proxy is None and made.poster is None
    assert (made.probe.has_video, made.probe.audio_codec) == (False, "aac")
    assert _video(made.waveform)["codec_name"] == "png"


async def test_audio_family_gets_probe_and_waveform(maker, tmp_path):
    made = await maker.make(make_audio(tmp_path / "tone.wav"), tmp_path / "out", "audio")
    assert made.kind == "audio" and made.probe.audio_codec == "pcm_s16le"
    assert (_video(made.waveform)["width"], _video(made.waveform)["height"]) == (1024, 160)


async def test_image_without_picture_is_bad_media(maker, tmp_path):
    with pytest.raises(BadMedia, match="no video stream"):
        await maker.make(make_audio(tmp_path / "tone.wav"), tmp_path / "out", "image")


@pytest.mark.parametrize(("name", "pix_fmt", "size", "thumb"), [
    ("still.png", None, "1000x600", (512, 307)),
    ("still.jpg", None, "300x200", (300, 200)),  # never enlarged
    ("tall.png", None, "400x900", (228, 512)),
    ("plate.exr", "gbrpf32le", "640x360", (512, 288)),
    ("scan.dpx", "rgb48le", "640x360", (512, 288)),
    ("odd.tiff", None, "333x111", (333, 111)),
])
async def test_images_get_a_thumbnail(maker, tmp_path, name, pix_fmt, size, thumb):
    source = make_image(tmp_path / name, size=size, pix_fmt=pix_fmt)
    made = await maker.make(source, tmp_path / "out", "image")
    assert made.kind == "image" and made.proxy is None
    video = _video(made.thumbnail)
    assert (video["codec_name"], (video["width"], video["height"])) == ("mjpeg", thumb)
    assert mean_luma(made.thumbnail) > 60  # a picture, not a black frame


async def test_exr_thumbnail_applies_the_srgb_curve(maker, tmp_path):
    source = make_image(tmp_path / "plate.exr", pix_fmt="gbrpf32le")
    made = await maker.make(source, tmp_path / "out", "image")
    assert "iec61966_2_1" in made.commands[-1]
    assert mean_luma(made.thumbnail) > mean_luma(source)


async def test_truncated_file_is_bad_media_with_a_clear_reason(maker, tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", seconds=2).read_bytes()  # moov at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadMedia) as caught:
        await maker.make(cut, tmp_path / "out", "video")
    assert caught.value.failure_class == "bad_input" and not caught.value.retryable
    assert "moov atom not found" in caught.value.message
    assert str(tmp_path) not in caught.value.message  # only the file name, never node paths
    assert not (tmp_path / "out" / "proxy.mp4").exists()


async def test_random_bytes_are_bad_media(maker, tmp_path):
    noise = tmp_path / "noise.mov"
    noise.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(BadMedia, match=r"^probe: .*noise\.mov"):
        await maker.make(noise, tmp_path / "out", "video")


async def test_unsupported_family_and_empty_file(maker, tmp_path):
    with pytest.raises(BadMedia, match="scene files are unsupported for previews"):
        await maker.make(make_clip(tmp_path / "a.mp4"), tmp_path / "out", "scene")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(BadMedia, match="empty"):
        await maker.make(tmp_path / "empty.mp4", tmp_path / "out", "video")


async def test_preview_set_is_json_ready_and_errors_pickle(maker, tmp_path):
    made = await maker.make(make_clip(tmp_path / "a.mp4"), tmp_path / "out", "video")
    data = made.as_dict()
    assert data["files"] == {"poster": "poster.jpg", "proxy": "proxy.mp4",
                             "filmstrip": "filmstrip.jpg"}
    assert set(data["timings"]) >= {"probe", "poster", "filmstrip", "proxy", "total"}
    copy = pickle.loads(pickle.dumps(BadMedia("probe: x.mp4: Invalid data")))
    assert (copy.failure_class, copy.code, copy.retryable) == ("bad_input", "bad_media", False)


async def test_anamorphic_clip_gets_square_pixels_at_its_shown_width(maker, tmp_path):
    source = make_clip(tmp_path / "dv.mov", size="720x480", sar="32/27")
    made = await maker.make(source, tmp_path / "out", "video")
    assert (made.probe.display_width, made.probe.display_height) == (853, 480)
    _assert_browser_proxy(made.proxy, width=852, height=480)
    assert _video(made.proxy)["sample_aspect_ratio"] == "1:1"


async def test_rotated_phone_clip_stays_upright(maker, tmp_path):
    source = make_clip(tmp_path / "plain.mp4")
    rotated = tmp_path / "phone.mp4"
    ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    made = await maker.make(rotated, tmp_path / "out", "video")
    _assert_browser_proxy(made.proxy, width=180, height=320)
    assert "side_data_list" not in _video(made.proxy)  # not rotated a second time
    assert _video(made.filmstrip)["height"] == 2 * made.filmstrip_geometry.tile_height == 568


@pytest.mark.parametrize(("maker_file", "family", "kind", "made_file"), [
    (lambda p: make_clip(p.with_suffix(".mkv"), audio=True), "video", "video", "proxy"),
    (lambda p: make_image(p.with_suffix(".exr"), pix_fmt="gbrpf32le"), "image", "image",
     "thumbnail"),
    (lambda p: make_audio(p.with_suffix(".flac")), "audio", "audio", "waveform"),
])
async def test_node_cache_names_without_extension_work(maker, tmp_path, maker_file, family,
                                                       kind, made_file):
    """Farm nodes keep inputs under their SHA-256, with no extension: content decides."""
    cached = maker_file(tmp_path / "source").rename(tmp_path / ("ab" * 32))
    made = await maker.make(cached, tmp_path / "out", family)
    assert made.kind == kind and made.files()[made_file].stat().st_size > 0
