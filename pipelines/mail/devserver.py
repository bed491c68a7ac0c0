"""The embedded SMTP server of `farm up` and the tests: every message it is given is kept
as an `.eml` file in a folder, where a developer (or a test) reads it.

Run as `python -m pipelines.mail.devserver --port 2525 --dir data/mail`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
import uuid
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

MAX_MESSAGE_BYTES = 1024 * 1024


class KeepToFolder:
    """aiosmtpd handler: writes each message whole, then renames it into place, so a
    reader never sees half a message."""

    def __init__(self, folder: Path):
        self.folder = folder
        # Messages hold sign-in codes and invitation links: for this machine's owner only.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.folder / f".{name}.part"
        header = (f"X-Envelope-From: {envelope.mail_from}\n"
                  f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\n").encode()
        partial.touch(mode=0o600)
        partial.write_bytes(header + readable(envelope.original_content))
        os.replace(partial, self.folder / name)
        return "250 kept"


def readable(raw: bytes) -> bytes:
    """The message as a person reads (and greps) it on this machine: plain line ends, and a
    text body as it was written, so a link is one line to copy, not quoted-printable."""
    as_sent = raw.replace(b"\r\n", b"\n")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if message.is_multipart() or message.get_content_type() != "text/plain":
        return as_sent
    try:
        message.set_content(message.get_content(), cte="8bit")
    except (ValueError, LookupError):  # a body it cannot decode: not ours to reshape
        return as_sent
    return message.as_bytes(policy=policy.default.clone(cte_type="8bit", linesep="\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    controller = Controller(KeepToFolder(args.dir), hostname=args.host, port=args.port,
                            data_size_limit=MAX_MESSAGE_BYTES)
    controller.start()
    print(f"mail server on {args.host}:{args.port}, messages in {args.dir}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(stopped.wait())
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
