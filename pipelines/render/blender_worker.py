"""Renders frames of a .blend file with Cycles; one machine-readable line per frame.

Runs as its own process, started by the farm's BlenderRenderer through the hardened tool
runner: `python blender_worker.py --scene S --frames 1-4 --out DIR ...` with the `bpy`
module, or `blender -b --factory-startup -P blender_worker.py -- --scene S ...`. Only the
standard library and bpy are imported, so Blender's own Python can run this file.

Protocol on stdout (everything Blender itself prints goes to stderr instead):

    FARM_SCENE {"fps": 24.0, "frame_start": 1, "frame_end": 48, "width": 320, ...}
    FARM_FRAME {"frame": 3, "seconds": 0.52, "peak_rss": 301989888, "rss": ..., "file": ...}
    FARM_ERROR {"class": "bad_input", "message": "..."}

Exit status: 0 every frame rendered, 3 the scene cannot be used (bad input), 4 the render
failed (crash), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

BAD_INPUT, CRASH = 3, 4
FORMATS = {"PNG": "png", "OPEN_EXR": "exr", "JPEG": "jpg"}
GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


class WorkerError(Exception):
    def __init__(self, failure_class: str, message: str):
        super().__init__(message)
        self.failure_class = failure_class


def parse_args(argv: list[str]) -> argparse.Namespace:
    if "--" in argv:  # inside Blender, the script's own arguments follow `--`
        argv = argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(description="Render frames of a .blend file.")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--frames", required=True, help="comma-separated frame numbers")
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", type=int, default=0, help="0: the scene's own")
    parser.add_argument("--percent", type=int, default=0, help="0: the scene's own")
    parser.add_argument("--format", choices=sorted(FORMATS), default="PNG")
    parser.add_argument("--device", choices=("cpu", "auto", "gpu"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="0: every core")
    return parser.parse_args(argv)


def frames_of(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


class Channel:
    """Our lines go to the real stdout; Blender's C-level prints are moved to stderr."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self.fd = os.dup(1)
        os.dup2(2, 1)

    def send(self, tag: str, data: dict) -> None:
        os.write(self.fd, f"{tag} {json.dumps(data, separators=(',', ':'))}\n".encode())


def open_scene(bpy, path: str):
    if not os.path.isfile(path):
        raise WorkerError("bad_input", f"{os.path.basename(path)}: no such scene file")
    try:  # scripts stored in the file never run: a scene is data, not code
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=False)
    except Exception as exc:  # noqa: BLE001 - Blender reports unreadable files this way
        message = str(exc).replace(path, os.path.basename(path)).strip()
        raise WorkerError("bad_input", f"cannot open the scene: {message}") from None
    scene = bpy.context.scene
    if scene is None or scene.camera is None:
        raise WorkerError("bad_input", "the scene has no active camera")
    return scene


def use_device(bpy, scene, device: str) -> str:
    """CPU, or the first GPU backend with a device when the job allows one."""
    scene.cycles.device = "CPU"
    if device == "cpu":
        return "CPU"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in GPU_BACKENDS:
        try:
            prefs.compute_device_type = backend
        except TypeError:  # not built into this Blender
            continue
        prefs.get_devices()
        found = [d for d in prefs.devices if d.type == backend]
        if found:
            for entry in prefs.devices:
                entry.use = entry.type == backend
            scene.cycles.device = "GPU"
            return backend
    if device == "gpu":
        raise WorkerError("crash", "the job needs a GPU and this node has none Cycles can use")
    return "CPU"


def configure(bpy, scene, args: argparse.Namespace) -> dict:
    scene.render.engine = "CYCLES"
    backend = use_device(bpy, scene, args.device)
    if args.samples:
        scene.cycles.samples = args.samples
    if args.percent:
        scene.render.resolution_percentage = args.percent
    if args.threads:
        scene.render.threads_mode, scene.render.threads = "FIXED", args.threads
    scene.render.image_settings.file_format = args.format
    scene.render.use_file_extension = True
    render = scene.render
    return {"fps": round(render.fps / (render.fps_base or 1.0), 6),
            "frame_start": scene.frame_start, "frame_end": scene.frame_end,
            "width": render.resolution_x * render.resolution_percentage // 100,
            "height": render.resolution_y * render.resolution_percentage // 100,
            "samples": scene.cycles.samples, "device": backend,
            "blender": bpy.app.version_string}


def memory() -> tuple[int, int]:
    """(peak resident bytes so far, resident bytes now) of this process."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        with open("/proc/self/statm") as handle:
            now = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        now = peak
    return peak, now


def render_frames(bpy, scene, args: argparse.Namespace, channel: Channel) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for frame in frames_of(args.frames):
        started = time.perf_counter()
        scene.frame_set(frame)
        scene.render.filepath = str(out / f"{frame:05d}")
        try:
            bpy.ops.render.render(write_still=True)
        except Exception as exc:  # noqa: BLE001
            raise WorkerError("crash", f"frame {frame}: {exc}") from None
        written = out / f"{frame:05d}.{FORMATS[args.format]}"
        if not written.is_file():
            raise WorkerError("crash", f"frame {frame}: Blender wrote no image")
        peak, now = memory()
        channel.send("FARM_FRAME", {"frame": frame, "seconds": round(
            time.perf_counter() - started, 4), "peak_rss": peak, "rss": now,
            "file": written.name})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    channel = Channel()
    try:
        try:
            import bpy
        except ImportError as exc:  # this node's Python has no Blender module
            raise WorkerError("crash", f"cannot import bpy: {exc}") from None
        scene = open_scene(bpy, os.path.abspath(args.scene))
        channel.send("FARM_SCENE", configure(bpy, scene, args))
        render_frames(bpy, scene, args, channel)
    except WorkerError as exc:
        channel.send("FARM_ERROR", {"class": exc.failure_class, "message": str(exc)})
        return BAD_INPUT if exc.failure_class == "bad_input" else CRASH
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # Blender's atexit handlers can take seconds; nothing is left to save
