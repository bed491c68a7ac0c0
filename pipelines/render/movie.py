"""Rendered frames → a browser-playable movie, its poster and filmstrip; low-res previews.

The frames are linked under consecutive names (`000001.png`, ...) in a fresh folder and
read as one image2 sequence at the scene's frame rate, so stepped ranges (`1-100x2`) and
previews with frames still missing need no gaps in the numbering. Every command carries
the media recipes' hardening (file: URLs, protocol and demuxer whitelists, no stdin) and
runs through the hardened tool runner with the preview limits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from pipelines.media import recipes
from pipelines.media.errors import BadMedia, MediaError
from pipelines.media.previews import PreviewLimits, moov_before_mdat, proxy_problems
from pipelines.media.probe import ProbeSummary, parse_probe
from pipelines.media.runner import run_tool

PROGRESSIVE_WIDTH_PX = 480


@dataclass
class Movie:
    movie: Path
    probe: ProbeSummary
    poster: Path | None = None
    filmstrip: Path | None = None
    geometry: recipes.FilmstripGeometry | None = None
    commands: list[list[str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def files(self) -> dict[str, Path]:
        found = {"proxy": self.movie, "poster": self.poster, "filmstrip": self.filmstrip}
        return {name: path for name, path in found.items() if path is not None}

    def as_dict(self) -> dict[str, Any]:
        """The shape of an uploaded video's previews (pipelines.media.previews.PreviewSet)."""
        return {"kind": "video", "probe": self.probe.as_dict(),
                "files": {name: path.name for name, path in self.files().items()},
                "filmstrip": self.geometry.as_dict() if self.geometry else None,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def rate(fps: float) -> str:
    """24 → "24/1", 23.976 → "24000/1001": what FFmpeg's -framerate wants."""
    value = Fraction(fps).limit_denominator(1001)
    return f"{value.numerator}/{value.denominator}"


def link_sequence(images: list[Path], directory: Path) -> Path:
    """Links `000001.<ext>`... to `images` in order; returns the image2 pattern."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = images[0].suffix if images else ".png"
    for number, image in enumerate(images, start=1):
        link = directory / f"{number:06d}{suffix}"
        link.unlink(missing_ok=True)
        link.symlink_to(image.resolve())
    return directory / f"%06d{suffix}"


def hold_frames(timeline: list[int], present: dict[int, Path]) -> list[Path]:
    """One image per frame of the timeline: a frame not rendered yet shows the latest
    rendered one before it (or the first rendered one), so the preview keeps the timing."""
    if not present:
        raise BadMedia("no rendered frames yet")
    rendered = sorted(present)
    shown, latest = [], present[rendered[0]]
    for frame in timeline:
        latest = present.get(frame, latest)
        shown.append(latest)
    return shown


def sequence_movie(ffmpeg_bin: str, pattern: Path, output: Path, *, fps: float, count: int,
                   max_width: int, linear: bool = False, preset: str = "veryfast",
                   crf: int = 23, keyint_frames: int = 12) -> list[str]:
    """H.264 for browsers from an image sequence: yuv420p, even size no wider than
    max_width, moov first, short GOPs, no audio. EXR (scene-linear) gets the sRGB curve."""
    options = {"apply_trc": "iec61966_2_1"} if linear else {}
    stream = ffmpeg.input(recipes.file_url(pattern), f="image2", framerate=rate(fps),
                          start_number=1, **recipes.INPUT_OPTIONS, **options)
    width = f"max(2,trunc(min({max_width},iw*sar)/2)*2)"
    video = (stream.filter("scale", w=width, h="max(2,round(ow/dar/2)*2)")
             .filter("setsar", 1).filter("format", "yuv420p"))
    out = video.output(recipes.file_url(output), f="mp4", movflags="+faststart",
                       map_metadata=-1, preset=preset, crf=crf, g=keyint_frames,
                       keyint_min=keyint_frames, sc_threshold=0, an=None,
                       **{"c:v": "libx264", "pix_fmt": "yuv420p", "profile:v": "high",
                          "frames:v": count})
    compiled = out.compile(cmd=ffmpeg_bin)
    return [compiled[0], *recipes.GLOBAL_FLAGS, *compiled[1:]]


class MovieMaker:
    def __init__(self, limits: PreviewLimits | None = None, *, max_width: int = 1920,
                 filmstrip_tiles: int = 20, tile_width: int = 160):
        self.limits = limits or PreviewLimits()
        self.max_width = max_width
        self.filmstrip_tiles = filmstrip_tiles
        self.tile_width = tile_width

    async def assemble(self, images: list[Path], work: Path, fps: float) -> Movie:
        """The finished shot: movie, checked (frame count, rate, browser fitness), then a
        poster from the middle of the shot and a filmstrip."""
        movie = Movie(work / "movie.mp4", ProbeSummary("mp4", None, True, False))
        pattern = link_sequence(images, work / "sequence")
        await self._run(movie, "movie", sequence_movie(
            self.limits.ffmpeg, pattern, movie.movie, fps=fps, count=len(images),
            max_width=self.max_width, linear=pattern.suffix == ".exr"))
        movie.probe = await self._check(movie, len(images), fps)
        middle = (movie.probe.duration_s or 0.0) / 2
        movie.poster = work / "poster.jpg"
        await self._run(movie, "poster", recipes.poster(
            self.limits.ffmpeg, movie.movie, movie.poster, seek_s=round(middle, 3)))
        movie.geometry = recipes.filmstrip_geometry(movie.probe, count=self.filmstrip_tiles,
                                                    tile_width=self.tile_width)
        movie.filmstrip = work / "filmstrip.jpg"
        await self._run(movie, "filmstrip", recipes.filmstrip(
            self.limits.ffmpeg, movie.movie, movie.filmstrip, movie.geometry))
        return movie

    async def progressive(self, images: list[Path], work: Path, fps: float,
                          max_width: int = PROGRESSIVE_WIDTH_PX) -> Movie:
        """A quick low-resolution movie of the shot so far (no poster, no filmstrip)."""
        movie = Movie(work / "progressive.mp4", ProbeSummary("mp4", None, True, False))
        pattern = link_sequence(images, work / "sequence")
        await self._run(movie, "progressive", sequence_movie(
            self.limits.ffmpeg, pattern, movie.movie, fps=fps, count=len(images),
            max_width=max_width, linear=pattern.suffix == ".exr", preset="ultrafast",
            crf=30))
        return movie

    async def _check(self, movie: Movie, frames: int, fps: float) -> ProbeSummary:
        result = await self._run(movie, "probe", recipes.probe(self.limits.ffprobe,
                                                               movie.movie))
        found = parse_probe(result.stdout)
        problems = proxy_problems(found, had_audio=False, max_width=self.max_width)
        if found.frames != frames:
            problems.append(f"{found.frames} frames, not {frames}")
        if not found.fps or abs(found.fps - fps) > 0.01:
            problems.append(f"{found.fps} frames a second, not {fps}")
        if not moov_before_mdat(movie.movie):
            problems.append("moov atom is not before mdat (no faststart)")
        if problems:
            raise BadMedia("movie check failed: " + "; ".join(problems))
        return found

    async def _run(self, movie: Movie, step: str, argv: list[str]):
        movie.commands.append(argv)
        started = time.monotonic()
        try:
            return await run_tool(argv, timeout_s=self.limits.timeout_s,
                                  memory_bytes=self.limits.memory_bytes,
                                  cpu_seconds=self.limits.cpu_seconds)
        except MediaError as exc:  # the same error, naming the step
            raise type(exc)(f"{step}: {exc.message}", code=exc.code,
                            details=exc.details) from None
        finally:
            movie.timings[step] = time.monotonic() - started
