"""Previews of one asset version: probe, then poster + proxy + filmstrip, or a thumbnail.

`PreviewMaker` is a plain class; the farm's NodeAgent awaits `make` on its node. Every tool
runs through `run_tool` with the same limits, every output is written under a partial name
and renamed only once checked, so a failed or cancelled job leaves no half file that looks
finished. Whatever goes wrong ends as a MediaError with a failure class, never a hang.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.media import recipes
from pipelines.media.errors import BadMedia, MediaError
from pipelines.media.probe import ProbeSummary, parse_probe
from pipelines.media.recipes import FilmstripGeometry, ProxyOptions
from pipelines.media.runner import ToolResult, run_tool

FAMILIES = ("video", "image", "audio")
MAX_SIDE_PX = 16384  # larger claims are decompression bombs, not studio media
GIB = 1024**3


@dataclass(frozen=True)
class PreviewLimits:
    """Per tool process: every ffprobe/ffmpeg run gets all of these."""

    timeout_s: float = 600.0
    memory_bytes: int | None = 4 * GIB  # address space (RLIMIT_AS), not resident memory
    cpu_seconds: float | None = 3600.0  # all threads together (RLIMIT_CPU)
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"


@dataclass
class PreviewSet:
    kind: str  # what was made: "video", "image" or "audio"
    probe: ProbeSummary
    poster: Path | None = None
    proxy: Path | None = None
    proxy_probe: ProbeSummary | None = None
    filmstrip: Path | None = None
    filmstrip_geometry: FilmstripGeometry | None = None
    thumbnail: Path | None = None
    waveform: Path | None = None
    commands: list[list[str]] = field(default_factory=list)  # every argv, in order
    timings: dict[str, float] = field(default_factory=dict)  # step -> wall seconds

    def files(self) -> dict[str, Path]:
        names = ("poster", "proxy", "filmstrip", "thumbnail", "waveform")
        return {name: path for name in names if (path := getattr(self, name)) is not None}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: file names (not node paths), the probe and the sprite geometry."""
        geometry = self.filmstrip_geometry
        return {"kind": self.kind, "probe": self.probe.as_dict(),
                "files": {name: path.name for name, path in self.files().items()},
                "filmstrip": geometry.as_dict() if geometry else None,
                "timings": dict(self.timings)}


Runner = Callable[..., Awaitable[ToolResult]]


class PreviewMaker:
    def __init__(self, limits: PreviewLimits | None = None, proxy: ProxyOptions | None = None,
                 *, filmstrip_tiles: int = 20, tile_width: int = 160, runner: Runner = run_tool):
        self.limits = limits or PreviewLimits()
        self.proxy_options = proxy or ProxyOptions()
        self.filmstrip_tiles = filmstrip_tiles
        self.tile_width = tile_width
        self.runner = runner

    async def make(self, source_path: str | os.PathLike[str], workdir: str | os.PathLike[str],
                   family: str) -> PreviewSet:
        """Probe `source_path` and write its previews into `workdir` (created if missing)."""
        if family not in FAMILIES:
            raise BadMedia(f"{family} files are unsupported for previews")
        source, work = _prepare(source_path, workdir)
        started = time.monotonic()
        commands: list[list[str]] = []
        timings: dict[str, float] = {}
        summary = await self._probe(source, "probe", commands, timings)
        previews = PreviewSet(_kind(family, summary), summary, commands=commands,
                              timings=timings)
        if previews.kind == "video":
            await self._video(source, work, previews)
        elif previews.kind == "image":
            await self._image(source, work, previews)
        else:
            await self._audio(source, work, previews)
        timings["total"] = time.monotonic() - started
        return previews

    async def _video(self, source: Path, work: Path, previews: PreviewSet) -> None:
        summary = previews.probe
        _check_picture(summary)
        previews.poster = await self._poster(source, work, previews)
        geometry = recipes.filmstrip_geometry(summary, count=self.filmstrip_tiles,
                                              tile_width=self.tile_width)
        previews.filmstrip = await self._produce(
            previews, "filmstrip", work / "filmstrip.jpg",
            lambda out: recipes.filmstrip(self.limits.ffmpeg, source, out, geometry))
        previews.filmstrip_geometry = geometry
        previews.proxy = await self._proxy(source, work, previews)

    async def _poster(self, source: Path, work: Path, previews: PreviewSet) -> Path:
        """From 10% in; from the first frame when the clip is short or the seek finds none."""
        duration = previews.probe.duration_s or 0.0
        if duration >= 1.0:
            with contextlib.suppress(BadMedia):
                return await self._poster_at(source, work, previews, round(duration * 0.1, 3))
        return await self._poster_at(source, work, previews, 0.0)

    async def _poster_at(self, source: Path, work: Path, previews: PreviewSet,
                         seek_s: float) -> Path:
        return await self._produce(
            previews, "poster", work / "poster.jpg",
            lambda out: recipes.poster(self.limits.ffmpeg, source, out, seek_s=seek_s))

    async def _proxy(self, source: Path, work: Path, previews: PreviewSet) -> Path:
        options, has_audio = self.proxy_options, previews.probe.has_audio
        final = work / "proxy.mp4"

        def check(partial: Path) -> Awaitable[None]:
            return self._check_proxy(partial, previews)

        return await self._produce(
            previews, "proxy", final,
            lambda out: recipes.proxy(self.limits.ffmpeg, source, out, has_audio=has_audio,
                                      options=options), check=check)

    async def _check_proxy(self, partial: Path, previews: PreviewSet) -> None:
        found = await self._probe(partial, "proxy_check", previews.commands, previews.timings)
        problems = proxy_problems(found, had_audio=previews.probe.has_audio,
                                  max_width=self.proxy_options.max_width)
        if not moov_before_mdat(partial):
            problems.append("moov atom is not before mdat (no faststart)")
        if problems:
            raise BadMedia("proxy check failed: " + "; ".join(problems))
        previews.proxy_probe = found

    async def _image(self, source: Path, work: Path, previews: PreviewSet) -> None:
        summary = previews.probe
        _check_picture(summary)
        previews.thumbnail = await self._produce(
            previews, "thumbnail", work / "thumbnail.jpg",
            lambda out: recipes.thumbnail(self.limits.ffmpeg, source, out, summary))

    async def _audio(self, source: Path, work: Path, previews: PreviewSet) -> None:
        previews.waveform = await self._produce(
            previews, "waveform", work / "waveform.png",
            lambda out: recipes.waveform(self.limits.ffmpeg, source, out))

    async def _produce(self, previews: PreviewSet, step: str, final: Path,
                       build: Callable[[Path], list[str]],
                       check: Callable[[Path], Awaitable[None]] | None = None) -> Path:
        """Run one recipe into a partial file; rename it to `final` once it is checked."""
        partial = final.with_name(f"{final.stem}.part{final.suffix}")
        try:
            await self._run(build(partial), step, previews.commands, previews.timings)
            if not partial.is_file() or partial.stat().st_size == 0:
                raise BadMedia(f"{step}: no picture could be decoded")
            if check is not None:
                await check(partial)
            partial.replace(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return final

    async def _probe(self, path: Path, step: str, commands: list[list[str]],
                     timings: dict[str, float]) -> ProbeSummary:
        result = await self._run(recipes.probe(self.limits.ffprobe, path), step, commands,
                                 timings)
        try:
            return parse_probe(result.stdout)
        except BadMedia as exc:
            raise _in_step(exc, step) from None

    async def _run(self, argv: list[str], step: str, commands: list[list[str]],
                   timings: dict[str, float]) -> ToolResult:
        commands.append(argv)
        started = time.monotonic()
        try:
            return await self.runner(argv, timeout_s=self.limits.timeout_s,
                                     memory_bytes=self.limits.memory_bytes,
                                     cpu_seconds=self.limits.cpu_seconds)
        except MediaError as exc:
            raise _in_step(exc, step) from None
        finally:
            timings[step] = timings.get(step, 0.0) + time.monotonic() - started


def proxy_problems(found: ProbeSummary, *, had_audio: bool, max_width: int) -> list[str]:
    """What makes a proxy unfit for browsers; empty when it is fine."""
    problems = []
    if found.video_codec != "h264":
        problems.append(f"video codec is {found.video_codec}, not h264")
    if found.pix_fmt != "yuv420p":
        problems.append(f"pixel format is {found.pix_fmt}, not yuv420p")
    width, height = found.width or 0, found.height or 0
    if width % 2 or height % 2 or not width or not height:
        problems.append(f"size {width}x{height} is not even")
    if width > max_width:
        problems.append(f"width {width} is over {max_width}")
    if had_audio and found.audio_codec != "aac":
        problems.append(f"audio codec is {found.audio_codec}, not aac")
    if not had_audio and found.has_audio:
        problems.append("audio stream where the source had none")
    return problems


def moov_before_mdat(path: Path) -> bool:
    """Whether the MP4's index comes before its media data (browsers play at once)."""
    return (atoms := top_level_atoms(path)) != [] and "moov" in atoms and (
        "mdat" not in atoms or atoms.index("moov") < atoms.index("mdat"))


def top_level_atoms(path: Path, limit: int = 64) -> list[str]:
    """Names of the top-level boxes of an ISO media file, in file order."""
    names: list[str] = []
    with path.open("rb") as handle:
        offset, size = 0, path.stat().st_size
        while offset + 8 <= size and len(names) < limit:
            handle.seek(offset)
            header = handle.read(16)
            length, name = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1 and len(header) == 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                length = size - offset
            if length < 8:
                break
            names.append(name.decode("latin-1"))
            offset += length
    return names


def _prepare(source_path: str | os.PathLike[str],
             workdir: str | os.PathLike[str]) -> tuple[Path, Path]:
    work = Path(os.path.abspath(workdir))
    work.mkdir(parents=True, exist_ok=True)
    return _checked_source(Path(os.path.abspath(source_path)), work), work


def _checked_source(source: Path, work: Path) -> Path:
    """A regular, non-empty file; a name with '%' is shown to FFmpeg under a plain name,
    because the image2 demuxer reads `x%d.png` as a sequence of its sibling files."""
    if not source.is_file():
        raise BadMedia(f"{source.name}: not a regular file")
    if source.stat().st_size == 0:
        raise BadMedia(f"{source.name}: the file is empty")
    if "%" not in source.name:
        return source
    link = work / f"source{_safe_suffix(source)}"
    link.unlink(missing_ok=True)
    link.symlink_to(source)
    return link


def _safe_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""


def _kind(family: str, summary: ProbeSummary) -> str:
    """What to make, from the declared family and what the probe found."""
    if family == "video" and not summary.has_video and summary.has_audio:
        return "audio"  # an MP4 or Matroska file holding only sound
    if family in ("video", "image") and not summary.has_video:
        raise BadMedia("no video stream found")
    if family == "audio" and not summary.has_audio:
        raise BadMedia("no audio stream found")
    return family


def _check_picture(summary: ProbeSummary) -> None:
    width, height = summary.width, summary.height
    if not width or not height:
        raise BadMedia("the video stream has no picture size")
    if max(width, height) > MAX_SIDE_PX:
        raise BadMedia(f"picture of {width}x{height} is larger than {MAX_SIDE_PX} px a side")


def _in_step(exc: MediaError, step: str) -> MediaError:
    """The same error, its message prefixed with the step (`proxy: ...`)."""
    return type(exc)(f"{step}: {exc.message}", code=exc.code, details=exc.details)
