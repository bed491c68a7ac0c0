"""ffprobe's JSON, reduced to the facts the previews and the frontend need.

ffprobe reports what the container claims; anything missing or absurd becomes `None` here
rather than an exception, and the preview plan decides what it can still make.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.media.errors import BadMedia


@dataclass(frozen=True)
class ProbeSummary:
    format_name: str
    duration_s: float | None
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None  # stored pixels
    height: int | None = None
    display_width: int | None = None  # as shown: pixel aspect ratio and rotation applied
    display_height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None
    frames: int | None = None
    audio_channels: int | None = None
    sample_rate: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_probe(stdout: bytes) -> ProbeSummary:
    """Summarise `ffprobe -show_format -show_streams -count_packets -print_format json`."""
    try:
        data = json.loads(stdout or b"{}")
    except ValueError:
        raise BadMedia("the media probe returned unreadable output") from None
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    fmt = data.get("format") if isinstance(data.get("format"), dict) else {}
    video, audio = _first_video(streams), _first(streams, "audio")
    if video is None and audio is None:
        raise BadMedia("no video or audio stream found")
    summary = ProbeSummary(
        format_name=str(fmt.get("format_name") or "unknown"),
        duration_s=_positive(fmt.get("duration")) or _positive((video or audio or {})
                                                                .get("duration")),
        has_video=video is not None, has_audio=audio is not None)
    if video is not None:
        summary = _with_video(summary, video)
    if audio is not None:
        summary = _with_audio(summary, audio)
    return summary


def _with_video(summary: ProbeSummary, video: dict[str, Any]) -> ProbeSummary:
    width, height = _int(video.get("width")), _int(video.get("height"))
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    frames = _int(video.get("nb_frames")) or _int(video.get("nb_read_packets"))
    duration = summary.duration_s
    if duration is None and frames and fps:
        duration = frames / fps
    display = _display_size(video, width, height)
    return _replace(summary, video_codec=video.get("codec_name"), width=width, height=height,
                    display_width=display[0], display_height=display[1],
                    pix_fmt=video.get("pix_fmt"), fps=fps, frames=frames, duration_s=duration)


def _with_audio(summary: ProbeSummary, audio: dict[str, Any]) -> ProbeSummary:
    return _replace(summary, audio_codec=audio.get("codec_name"),
                    audio_channels=_int(audio.get("channels")),
                    sample_rate=_int(audio.get("sample_rate")))


def _replace(summary: ProbeSummary, **changes: Any) -> ProbeSummary:
    return ProbeSummary(**(asdict(summary) | changes))


def _first_video(streams: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first real picture stream: cover art in audio files does not make a video."""
    for stream in streams:
        disposition = stream.get("disposition") or {}
        if stream.get("codec_type") == "video" and not disposition.get("attached_pic"):
            return stream
    return None


def _first(streams: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((s for s in streams if s.get("codec_type") == kind), None)


def _display_size(video: dict[str, Any], width: int | None,
                  height: int | None) -> tuple[int | None, int | None]:
    if not width or not height:
        return None, None
    sar = _rate(str(video.get("sample_aspect_ratio", "1:1")).replace(":", "/")) or 1.0
    shown_w, shown_h = max(1, round(width * sar)), height
    if _rotation(video) % 180 == 90:  # FFmpeg turns the picture upright when decoding
        shown_w, shown_h = shown_h, shown_w
    return shown_w, shown_h


def _rotation(video: dict[str, Any]) -> int:
    for side in video.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            return int(_float(side["rotation"]) or 0) % 360
    return int(_float((video.get("tags") or {}).get("rotate")) or 0) % 360


def _rate(text: Any) -> float | None:
    """'30000/1001' -> 29.97; '0/0', garbage or absurd rates -> None."""
    if not isinstance(text, str) or not text:
        return None
    num, _, den = text.partition("/")
    value = _float(num)
    if den:
        divisor = _float(den)
        value = value / divisor if value is not None and divisor else None
    return value if value is not None and 0 < value < 10_000 else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _positive(value: Any) -> float | None:
    number = _float(value)
    return number if number is not None and number > 0 else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number > 0 else None
