"""What can go wrong when FFmpeg runs on a farm node, as decisions for the retry policy.

Every class carries `failure_class` ("bad_input", "timeout", "crash"): the farm's retry
policy reads it instead of parsing messages. A bad file is never retried (it fails the same
way on every node); a timeout or a crash may be worth another try, perhaps on another node.
The classes keep FarmError's constructor, so they survive pickling across actor calls.
"""

from __future__ import annotations

from pipelines.errors import FarmError, InvalidInput


class MediaError(FarmError):
    """Base of every media failure; `except MediaError` catches the three below."""

    code = "media_failed"
    failure_class = "crash"


class BadMedia(InvalidInput, MediaError):
    """The input cannot be previewed: unsupported, truncated, corrupt or hostile."""

    code = "bad_media"
    retryable = False
    failure_class = "bad_input"


class MediaTimeout(MediaError):
    """A tool ran past its wall-clock or CPU-time limit and was killed."""

    code = "media_timeout"
    retryable = True
    failure_class = "timeout"


class MediaCrashed(MediaError):
    """A tool died by a signal, ran out of memory, or could not be started on this node."""

    code = "media_crashed"
    retryable = True
    failure_class = "crash"
