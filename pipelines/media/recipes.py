"""FFmpeg and ffprobe command lines for previews, as argument lists. Pure: nothing runs here.

Every command carries the same hardening (CVE-2016-1897/1898, CVE-2017-9993 read local files
through HLS playlists and the concat protocol/demuxer):

- `-nostdin`, `-hide_banner`, `-nostats`, `-loglevel error`, `-y`: no terminal, and stderr
  ends with the error that matters;
- the input as `file:` + an absolute path, so a name like `-i.mp4` is never an option and
  `concat:a|b` or `http://x` is never a protocol;
- `-protocol_whitelist file`: nothing the input refers to may open a socket;
- `-format_whitelist` of the studio's demuxers: playlists (hls), concat scripts and other
  demuxers that open further files are refused before they read anything. The protocol
  whitelist alone does not stop an HLS playlist from opening `file:///some/local/clip.ts`.

Filter graphs are built with ffmpeg-python (it escapes filter arguments); its argument list
is then given the hardening flags.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import ffmpeg

from pipelines.media.probe import ProbeSummary

# Demuxers for the studio's video, image and audio families (see pipelines/assets/content.py).
# Deliberately absent: hls, dash, concat, tee, the lavfi device, subtitles, anything networked.
DEMUXERS = (
    "mov", "mp4", "matroska", "webm", "avi", "mpegts", "mxf", "ogg", "mpeg",
    "image2", "png_pipe", "jpeg_pipe", "exr_pipe", "dpx_pipe", "tiff_pipe", "webp_pipe",
    "gif", "gif_pipe", "hdr_pipe", "bmp_pipe", "jpegxl_pipe",
    "wav", "w64", "aiff", "flac", "mp3", "aac",
)
GLOBAL_FLAGS = ("-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y")
PROBE_FLAGS = ("-hide_banner", "-loglevel", "error")
INPUT_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(DEMUXERS)}
MAX_PROXY_WIDTH = 1920
THUMBNAIL_MAX_PX = 512


@dataclass(frozen=True)
class ProxyOptions:
    preset: str = "veryfast"
    crf: int = 23
    keyint_frames: int = 12  # a keyframe at least every 12 frames: frame-accurate scrubbing
    max_width: int = MAX_PROXY_WIDTH
    audio_bitrate: str = "128k"


@dataclass(frozen=True)
class FilmstripGeometry:
    """How the sprite is laid out: tile i shows time i * interval_s, left to right, top down."""

    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    interval_s: float

    @property
    def width(self) -> int:
        return self.columns * self.tile_width

    @property
    def height(self) -> int:
        return self.rows * self.tile_height

    def tile_at(self, time_s: float) -> tuple[int, int, int]:
        """(index, x, y) of the tile a frontend shows for `time_s`."""
        index = 0 if self.interval_s <= 0 else int(max(0.0, time_s) // self.interval_s)
        index = min(index, self.count - 1)
        return index, (index % self.columns) * self.tile_width, (
            index // self.columns) * self.tile_height

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"width": self.width, "height": self.height}


def file_url(path: str | os.PathLike[str]) -> str:
    """`file:` + absolute path: never an option, never another protocol."""
    return "file:" + os.path.abspath(os.fspath(path))


def probe(ffprobe: str, source: str | os.PathLike[str]) -> list[str]:
    """Container and streams as JSON; -count_packets gives a frame count when the container
    has none (it demuxes the whole file, without decoding)."""
    return [ffprobe, *PROBE_FLAGS, *_input_flags(), "-print_format", "json",
            "-show_format", "-show_streams", "-count_packets", file_url(source)]


def poster(ffmpeg_bin: str, source: str | os.PathLike[str], output: str | os.PathLike[str],
           *, seek_s: float = 0.0, max_width: int = MAX_PROXY_WIDTH) -> list[str]:
    """One JPEG from `seek_s` in (input seeking: only the frames near it are decoded)."""
    options = {"ss": f"{seek_s:.3f}"} if seek_s > 0 else {}
    stream = _scaled(_input(source, **options)["v:0"], max_width)
    out = stream.output(file_url(output), f="image2", update=1, **{"frames:v": 1, "q:v": 2})
    return _compile(ffmpeg_bin, out)


def proxy(ffmpeg_bin: str, source: str | os.PathLike[str], output: str | os.PathLike[str],
          *, has_audio: bool, options: ProxyOptions = ProxyOptions()) -> list[str]:
    """H.264 for browsers: yuv420p, even size no wider than max_width, moov first, short
    GOPs, AAC stereo or no audio at all, no metadata of the source."""
    src = _input(source)
    video = _scaled(src["v:0"], options.max_width).filter("format", "yuv420p")
    streams = [video, src["a:0"]] if has_audio else [video]
    audio: dict[str, Any] = ({"c:a": "aac", "b:a": options.audio_bitrate, "ac": 2}
                             if has_audio else {"an": None})
    out = ffmpeg.output(*streams, file_url(output), f="mp4", movflags="+faststart",
                        map_metadata=-1, map_chapters=-1, preset=options.preset,
                        crf=options.crf, g=options.keyint_frames,
                        keyint_min=options.keyint_frames, sc_threshold=0,
                        **{"c:v": "libx264", "pix_fmt": "yuv420p", "profile:v": "high"}, **audio)
    return _compile(ffmpeg_bin, out)


def filmstrip_geometry(summary: ProbeSummary, *, count: int = 20, tile_width: int = 160,
                       max_columns: int = 10) -> FilmstripGeometry:
    """`count` evenly spaced tiles (fewer for clips with fewer frames)."""
    count = max(1, min(count, summary.frames or count))
    columns = min(count, max_columns)
    rows = math.ceil(count / columns)
    count = columns * rows  # a full grid: the tile filter emits only when every cell is filled
    shown_w, shown_h = summary.display_width or 16, summary.display_height or 9
    tile_height = max(2, round(tile_width * shown_h / shown_w / 2) * 2)
    interval = (summary.duration_s or 0.0) / count
    return FilmstripGeometry(count, columns, rows, tile_width, tile_height, round(interval, 6))


def filmstrip(ffmpeg_bin: str, source: str | os.PathLike[str], output: str | os.PathLike[str],
              geometry: FilmstripGeometry) -> list[str]:
    """One JPEG sprite: `fps` picks count frames spread over the clip, `tile` lays them out."""
    stream = _input(source)["v:0"]
    if geometry.interval_s > 0:
        stream = stream.filter("fps", fps=f"1/{geometry.interval_s:.6f}")
    stream = (stream.filter("scale", w=geometry.tile_width, h=geometry.tile_height)
              .filter("setsar", 1).filter("tile", f"{geometry.columns}x{geometry.rows}"))
    out = stream.output(file_url(output), f="image2", update=1, **{"frames:v": 1, "q:v": 4})
    return _compile(ffmpeg_bin, out)


def thumbnail_size(summary: ProbeSummary, max_px: int = THUMBNAIL_MAX_PX) -> tuple[int, int]:
    """Fit inside max_px x max_px, keeping the shown aspect ratio; never enlarge."""
    width, height = summary.display_width or max_px, summary.display_height or max_px
    scale = min(1.0, max_px / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail(ffmpeg_bin: str, source: str | os.PathLike[str], output: str | os.PathLike[str],
              summary: ProbeSummary, max_px: int = THUMBNAIL_MAX_PX) -> list[str]:
    """A JPEG of the first frame. EXR is scene-linear: its decoder applies the sRGB curve,
    values above 1.0 clip (a best-effort look, not a grade)."""
    options = {"apply_trc": "iec61966_2_1"} if summary.video_codec == "exr" else {}
    width, height = thumbnail_size(summary, max_px)
    stream = (_input(source, **options)["v:0"]
              .filter("scale", w=width, h=height).filter("setsar", 1))
    out = stream.output(file_url(output), f="image2", update=1, **{"frames:v": 1, "q:v": 3})
    return _compile(ffmpeg_bin, out)


def waveform(ffmpeg_bin: str, source: str | os.PathLike[str], output: str | os.PathLike[str],
             *, size: str = "1024x160") -> list[str]:
    """A PNG of the first audio stream's waveform, all channels mixed into one."""
    stream = (_input(source)["a:0"].filter("aformat", channel_layouts="mono")
              .filter("showwavespic", s=size, colors="#9ab8d8"))
    out = stream.output(file_url(output), f="image2", update=1, **{"frames:v": 1})
    return _compile(ffmpeg_bin, out)


# codec: (ffmpeg encoder options, container extension)
ENCODE_CODECS: dict[str, tuple[dict[str, str | int], str]] = {
    "h264": ({"vcodec": "libx264", "preset": "medium", "pix_fmt": "yuv420p",
              "movflags": "+faststart"}, "mp4"),
    "prores": ({"vcodec": "prores_ks", "profile:v": 3, "pix_fmt": "yuv422p10le"}, "mov"),
}


def encode(ffmpeg_bin: str, source: str | os.PathLike[str], output: str | os.PathLike[str],
           *, codec: str, crf: int, max_height: int | None) -> list[str]:
    """A deliverable of a video: H.264 (`crf` sets its quality) or ProRes 422 HQ, video
    only, no taller than `max_height` (even sizes, aspect kept)."""
    options, _ = ENCODE_CODECS[codec]
    video = _input(source).video
    if max_height:
        video = video.filter("scale", w="-2", h=f"min({max_height},trunc(ih/2)*2)")
    extra = {"crf": crf} if codec == "h264" else {}
    node = ffmpeg.output(video, str(output), **options, **extra)
    return _compile(ffmpeg_bin, node)


def _input(source: str | os.PathLike[str], **options: Any):
    return ffmpeg.input(file_url(source), **INPUT_OPTIONS, **options)


def _input_flags() -> list[str]:
    return [arg for key, value in INPUT_OPTIONS.items() for arg in (f"-{key}", value)]


def _scaled(stream, max_width: int):
    """No wider than max_width in shown pixels, even width and height, square pixels.

    `sar` is 1 when unknown; the height follows the shown aspect ratio (`dar`), rounded
    rather than truncated so 1920x1080 does not become 1920x1078 through float error.
    """
    width = f"max(2,trunc(min({max_width},iw*sar)/2)*2)"
    return stream.filter("scale", w=width, h="max(2,round(ow/dar/2)*2)").filter("setsar", 1)


def _compile(ffmpeg_bin: str, node) -> list[str]:
    compiled = node.compile(cmd=ffmpeg_bin)
    return [compiled[0], *GLOBAL_FLAGS, *compiled[1:]]

