"""A small animated Blender scene for trying the farm: `farm sample-scene PATH`.

Run it with the `bpy` module (`python -m pipelines.render.sample_scene out.blend`) or inside
Blender (`blender -b --factory-startup -P sample_scene.py -- out.blend`). It needs only the
standard library and bpy, so Blender's own Python can run the file as a script.

The scene: a floor, a cube that rises and spins, a glossy sphere, a cone, a sun and an area
light, and a camera that orbits the set, over 48 frames at 24 fps, Cycles on the CPU at
320x180 with 8 samples and no denoising: about half a second a frame on one core.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path


def _args(argv: list[str]) -> argparse.Namespace:
    if "--" in argv:  # inside Blender, the script's own arguments follow `--`
        argv = argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(description="Write a small animated .blend file.")
    parser.add_argument("output")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--samples", type=int, default=8)
    return parser.parse_args(argv)


def _material(bpy, name: str, color: tuple[float, float, float], roughness: float = 0.5):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    shader = material.node_tree.nodes["Principled BSDF"]
    shader.inputs["Base Color"].default_value = (*color, 1.0)
    shader.inputs["Roughness"].default_value = roughness
    return material


def _mesh(bpy, add, name: str, material, **options):
    add(**options)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.materials.append(material)
    return obj


def _objects(bpy, frames: int) -> None:
    mesh = bpy.ops.mesh
    _mesh(bpy, mesh.primitive_plane_add, "Floor", _material(bpy, "Floor", (0.6, 0.6, 0.55)),
          size=60)
    cube = _mesh(bpy, mesh.primitive_cube_add, "Cube", _material(bpy, "Red", (0.8, 0.1, 0.08)),
                 size=1.2, location=(0, 0, 0.6))
    for frame, height, turn in ((1, 0.6, 0.0), (frames // 2, 1.8, math.pi), (frames, 0.6,
                                                                              2 * math.pi)):
        cube.location.z, cube.rotation_euler.z = height, turn
        cube.keyframe_insert("location", index=2, frame=frame)
        cube.keyframe_insert("rotation_euler", index=2, frame=frame)
    sphere = _mesh(bpy, mesh.primitive_uv_sphere_add, "Sphere",
                   _material(bpy, "Blue", (0.1, 0.25, 0.8), roughness=0.15),
                   radius=0.7, location=(2.0, 0.5, 0.7), segments=32, ring_count=16)
    bpy.ops.object.shade_smooth()
    sphere.select_set(False)
    _mesh(bpy, mesh.primitive_cone_add, "Cone", _material(bpy, "Green", (0.1, 0.6, 0.2)),
          radius1=0.6, depth=1.4, location=(-2.0, -0.6, 0.7))


def _lights_and_camera(bpy, frames: int):
    bpy.ops.object.light_add(type="SUN", location=(4, -4, 8))
    bpy.context.active_object.data.energy = 3.0
    bpy.ops.object.light_add(type="AREA", location=(-3, -3, 4))
    bpy.context.active_object.data.energy = 300.0
    bpy.ops.object.empty_add(location=(0, 0, 0.8))
    target = bpy.context.active_object
    bpy.ops.object.camera_add()
    camera = bpy.context.active_object
    camera.data.lens = 35
    constraint = camera.constraints.new("TRACK_TO")
    constraint.target = target
    for frame in range(1, frames + 1, max(1, frames // 8)):  # an orbit, keyed every few frames
        angle = 2 * math.pi * (frame - 1) / max(1, frames)
        camera.location = (10 * math.cos(angle), 10 * math.sin(angle), 5.0)
        camera.keyframe_insert("location", frame=frame)
    return camera


def _settings(bpy, scene, args: argparse.Namespace) -> None:
    scene.frame_start, scene.frame_end = 1, args.frames
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    scene.render.resolution_x, scene.render.resolution_y = args.width, args.height
    scene.render.resolution_percentage = 100
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 4
    scene.render.image_settings.file_format = "PNG"
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.07, 0.1, 1)


def write_in_subprocess(output: str, *, frames: int = 48, blender: str | None = None,
                        timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    """Write the scene from a child process (bpy is heavy and owns its process): the bpy
    module of this Python, or `blender` when given."""
    args = [str(Path(output).resolve()), "--frames", str(frames)]
    script = str(Path(__file__).resolve())
    argv = ([blender, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
             "-P", script, "--", *args] if blender else [sys.executable, script, *args])
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                          check=False, stdin=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    import bpy  # only here: importing this module must not need Blender

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _objects(bpy, args.frames)
    scene.camera = _lights_and_camera(bpy, args.frames)
    _settings(bpy, scene, args)
    bpy.ops.wm.save_as_mainfile(filepath=args.output, compress=False)
    print(f"wrote {args.output}: {args.frames} frames at {args.fps} fps, "
          f"{args.width}x{args.height}, {args.samples} samples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
