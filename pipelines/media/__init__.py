"""Media on farm nodes: ffprobe/FFmpeg recipes, the hardened runner, preview making."""

from pipelines.media.errors import BadMedia, MediaCrashed, MediaError, MediaTimeout
from pipelines.media.previews import PreviewLimits, PreviewMaker, PreviewSet
from pipelines.media.runner import ToolResult, run_tool

__all__ = ["BadMedia", "MediaCrashed", "MediaError", "MediaTimeout", "PreviewLimits",
           "PreviewMaker", "PreviewSet", "ToolResult", "run_tool"]
