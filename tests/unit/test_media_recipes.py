"""Recipes are pure: argument lists with the hardening always in, checked without FFmpeg."""

from __future__ import annotations

import json
import os

import pytest

from pipelines.media import recipes
from pipelines.media.errors import BadMedia
from pipelines.media.probe import ProbeSummary, parse_probe
from pipelines.media.recipes import FilmstripGeometry, ProxyOptions

HOSTILE = ["-i.mp4", "-f.mp4", "concat:/etc/passwd|x.mp4", "http://127.0.0.1:9/x.ts",
           "a b;rm -rf ~.mov", "$(id).mp4", "shot\nnext.mov"]
CLIP = ProbeSummary("mov,mp4,m4a,3gp,3g2,mj2", 4.0, True, True, "h264", "aac", 1920, 1080,
                    1920, 1080, "yuv420p", 25.0, 100)


def _all_ffmpeg(source: str, out: str = "/work/out/x.jpg") -> dict[str, list[str]]:
    geometry = recipes.filmstrip_geometry(CLIP)
    return {
        "poster": recipes.poster("/usr/bin/ffmpeg", source, out, seek_s=0.4),
        "proxy": recipes.proxy("/usr/bin/ffmpeg", source, "/work/out/p.mp4", has_audio=True),
        "filmstrip": recipes.filmstrip("/usr/bin/ffmpeg", source, out, geometry),
        "thumbnail": recipes.thumbnail("/usr/bin/ffmpeg", source, out, CLIP),
        "waveform": recipes.waveform("/usr/bin/ffmpeg", source, "/work/out/w.png"),
    }


def _input_options(argv: list[str]) -> dict[str, str]:
    """Options between the global flags and -i: those that apply to the input."""
    head = argv[:argv.index("-i")]
    return {head[i]: head[i + 1] for i in range(len(head)) if head[i] in (
        "-protocol_whitelist", "-format_whitelist", "-ss", "-apply_trc")}


@pytest.mark.parametrize("name", HOSTILE)
def test_every_ffmpeg_recipe_is_hardened(name):
    source = f"/srv/cache/{name}"
    for step, argv in _all_ffmpeg(source).items():
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), step
        assert argv[0] == "/usr/bin/ffmpeg" and argv[1:7] == list(recipes.GLOBAL_FLAGS), step
        url = "file:" + os.path.abspath(source)  # "//" collapses: a path, never a URL
        assert argv.count("-i") == 1 and argv[argv.index("-i") + 1] == url
        options = _input_options(argv)
        assert options["-protocol_whitelist"] == "file", step
        assert set(options["-format_whitelist"].split(",")) == set(recipes.DEMUXERS)
        assert argv[-1].startswith("file:/work/out/"), step


def test_probe_recipe_is_hardened():
    argv = recipes.probe("ffprobe", "/srv/cache/-i.mp4")
    assert argv[0] == "ffprobe" and "-nostdin" not in argv  # ffprobe never reads stdin
    assert argv[-1] == "file:/srv/cache/-i.mp4"
    assert _input_options(argv + ["-i"])["-protocol_whitelist"] == "file"
    for flag in ("-show_format", "-show_streams", "-count_packets"):
        assert flag in argv
    assert argv[argv.index("-print_format") + 1] == "json"


def test_demuxer_whitelist_has_no_demuxer_that_opens_other_files():
    for risky in ("hls", "applehttp", "dash", "concat", "lavfi", "tee", "sdp", "rtsp",
                  "ffmetadata", "subviewer", "svg_pipe", "image2pipe"):
        assert risky not in recipes.DEMUXERS


def test_relative_and_hostile_names_become_absolute_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert recipes.file_url("-i.mp4") == f"file:{tmp_path}/-i.mp4"
    assert recipes.file_url("concat:/etc/passwd|x.mp4") == (
        f"file:{tmp_path}/concat:/etc/passwd|x.mp4")
    assert recipes.file_url(tmp_path / "a.mov") == f"file:{tmp_path}/a.mov"
    assert recipes.file_url("../x.mp4") == f"file:{os.path.dirname(tmp_path)}/x.mp4"


def test_no_shell_anywhere():
    for argv in [*_all_ffmpeg("/srv/a.mp4").values(), recipes.probe("ffprobe", "/srv/a.mp4")]:
        assert os.path.basename(argv[0]) in ("ffmpeg", "ffprobe")
        assert "-c" not in argv[:2] and not {"sh", "bash", "/bin/sh"} & set(argv)


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_proxy_is_browser_h264_with_short_gops_and_faststart():
    argv = recipes.proxy("ffmpeg", "/srv/a.mov", "/w/p.mp4", has_audio=True)
    assert (_value(argv, "-c:v"), _value(argv, "-pix_fmt")) == ("libx264", "yuv420p")
    assert (_value(argv, "-g"), _value(argv, "-keyint_min"), _value(argv, "-sc_threshold")) == (
        "12", "12", "0")
    assert (_value(argv, "-movflags"), _value(argv, "-f")) == ("+faststart", "mp4")
    assert (_value(argv, "-crf"), _value(argv, "-preset")) == ("23", "veryfast")
    assert (_value(argv, "-c:a"), _value(argv, "-b:a"), _value(argv, "-ac")) == (
        "aac", "128k", "2")
    graph = _value(argv, "-filter_complex")
    assert "min(1920\\,iw*sar)/2)*2" in graph and "round(ow/dar/2)*2" in graph
    assert "format=yuv420p" in graph and "setsar=1" in graph
    assert argv[argv.index("-map", argv.index("-map") + 1) + 1] == "0:a:0"


def test_proxy_without_audio_maps_no_audio_and_options_are_configurable():
    options = ProxyOptions(preset="medium", crf=20, keyint_frames=6, max_width=1280)
    argv = recipes.proxy("ffmpeg", "/srv/a.mov", "/w/p.mp4", has_audio=False, options=options)
    assert "-an" in argv and "0:a:0" not in argv and "-c:a" not in argv
    assert (_value(argv, "-preset"), _value(argv, "-crf"), _value(argv, "-g")) == (
        "medium", "20", "6")
    assert "min(1280\\,iw*sar)" in _value(argv, "-filter_complex")


def test_poster_seeks_on_the_input_and_first_frame_needs_no_seek():
    argv = recipes.poster("ffmpeg", "/srv/a.mov", "/w/poster.jpg", seek_s=1.25)
    assert argv.index("-ss") < argv.index("-i") and _value(argv, "-ss") == "1.250"
    assert _value(argv, "-frames:v") == "1"
    assert "-ss" not in recipes.poster("ffmpeg", "/srv/a.mov", "/w/poster.jpg")


def test_filmstrip_geometry_and_graph():
    geometry = recipes.filmstrip_geometry(CLIP, count=20, tile_width=160)
    assert geometry == FilmstripGeometry(20, 10, 2, 160, 90, 0.2)
    assert (geometry.width, geometry.height) == (1600, 180)
    graph = _value(recipes.filmstrip("ffmpeg", "/srv/a.mov", "/w/f.jpg", geometry),
                   "-filter_complex")
    assert "fps=fps=1/0.200000" in graph and "scale=h=90:w=160" in graph
    assert "tile=10x2" in graph


def test_filmstrip_geometry_of_short_odd_and_portrait_clips():
    short = ProbeSummary("mov", 0.3, True, False, width=321, height=181, display_width=321,
                         display_height=181, frames=7)
    geometry = recipes.filmstrip_geometry(short)
    assert (geometry.count, geometry.columns, geometry.rows) == (7, 7, 1)
    assert geometry.tile_height % 2 == 0 and geometry.tile_height == 90
    portrait = ProbeSummary("mov", 10.0, True, False, display_width=1080, display_height=1920)
    assert recipes.filmstrip_geometry(portrait, count=12).tile_height == 284
    assert recipes.filmstrip_geometry(portrait, count=12).rows == 2  # 10 + 2 -> full grid of 20


def test_tile_at_maps_time_to_sprite_position():
    geometry = FilmstripGeometry(20, 10, 2, 160, 90, 0.5)
    assert geometry.tile_at(0) == (0, 0, 0)
    assert geometry.tile_at(0.49) == (0, 0, 0)
    assert geometry.tile_at(5.2) == (10, 0, 90)
    assert geometry.tile_at(9.99) == (19, 1440, 90)
    assert geometry.tile_at(999) == (19, 1440, 90) and geometry.tile_at(-3) == (0, 0, 0)
    assert FilmstripGeometry(1, 1, 1, 160, 90, 0.0).tile_at(3) == (0, 0, 0)


@pytest.mark.parametrize(("size", "expected"), [
    ((4096, 2160), (512, 270)), ((300, 200), (300, 200)), ((1080, 1920), (288, 512)),
    ((512, 512), (512, 512)), ((5000, 3), (512, 1)),
])
def test_thumbnail_size_fits_512_and_never_enlarges(size, expected):
    summary = ProbeSummary("image2", None, True, False, display_width=size[0],
                           display_height=size[1])
    assert recipes.thumbnail_size(summary) == expected


def test_exr_thumbnail_applies_srgb_transfer_on_decode():
    exr = ProbeSummary("image2", None, True, False, "exr", width=64, height=64,
                       display_width=64, display_height=64)
    argv = recipes.thumbnail("ffmpeg", "/srv/plate.exr", "/w/t.jpg", exr)
    assert _input_options(argv)["-apply_trc"] == "iec61966_2_1"
    png = ProbeSummary("image2", None, True, False, "png", display_width=64, display_height=64)
    assert "-apply_trc" not in recipes.thumbnail("ffmpeg", "/srv/a.png", "/w/t.jpg", png)


def _probe_json(*streams: dict, fmt: dict | None = None) -> bytes:
    return json.dumps({"streams": list(streams), "format": fmt or {}}).encode()


def test_probe_summary_of_a_clip():
    summary = parse_probe(_probe_json(
        {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
         "avg_frame_rate": "30000/1001", "pix_fmt": "yuv420p", "nb_read_packets": "300",
         "sample_aspect_ratio": "1:1"},
        {"codec_type": "audio", "codec_name": "aac", "channels": 6, "sample_rate": "48000"},
        fmt={"format_name": "matroska,webm", "duration": "10.010000"}))
    assert summary.fps == pytest.approx(29.97, abs=0.01) and summary.frames == 300
    assert (summary.duration_s, summary.audio_codec, summary.audio_channels) == (10.01, "aac", 6)
    assert summary.as_dict()["display_width"] == 1920


def test_probe_ignores_cover_art_and_applies_rotation_and_pixel_aspect():
    cover = {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
             "disposition": {"attached_pic": 1}}
    song = parse_probe(_probe_json({"codec_type": "audio", "codec_name": "mp3"}, cover))
    assert (song.has_video, song.has_audio) == (False, True)
    phone = parse_probe(_probe_json({"codec_type": "video", "width": 1920, "height": 1080,
                                     "side_data_list": [{"rotation": -90}]}))
    assert (phone.display_width, phone.display_height) == (1080, 1920)
    dv = parse_probe(_probe_json({"codec_type": "video", "width": 720, "height": 480,
                                  "sample_aspect_ratio": "32:27"}))
    assert (dv.display_width, dv.display_height) == (853, 480)


def test_probe_tolerates_missing_fields_and_refuses_garbage():
    bare = parse_probe(_probe_json({"codec_type": "video", "avg_frame_rate": "0/0",
                                    "r_frame_rate": "25/1", "nb_frames": "50"}))
    assert (bare.fps, bare.frames, bare.duration_s, bare.width) == (25.0, 50, 2.0, None)
    with pytest.raises(BadMedia, match="unreadable"):
        parse_probe(b"{not json")
    with pytest.raises(BadMedia, match="no video or audio stream"):
        parse_probe(_probe_json({"codec_type": "data"}))
    with pytest.raises(BadMedia, match="no video or audio stream"):
        parse_probe(b"")
