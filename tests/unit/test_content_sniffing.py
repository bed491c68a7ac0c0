"""Uploads are judged by their bytes: real FFmpeg output, hand-built scene headers, impostors."""

from __future__ import annotations

import functools
import gzip
import io
import json
import random
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipelines.assets.content import SNIFF_BYTES, MediaType, check_declared, sniff
from pipelines.errors import UnsupportedMedia

VIDEO = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=24", "-t", "0.5"]
FRAME = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=1", "-frames:v", "1"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.3"]

# (file name, encoder it needs or None, ffmpeg arguments, expected mime, expected family)
ENCODED = [
    ("out.mp4", "libx264", [*VIDEO, "-pix_fmt", "yuv420p"], "video/mp4", "video"),
    ("out.mov", "libx264", [*VIDEO, "-pix_fmt", "yuv420p"], "video/quicktime", "video"),
    ("prores.mov", "prores_ks", [*VIDEO, "-c:v", "prores_ks"], "video/quicktime", "video"),
    ("out.ogv", "libtheora", [*VIDEO, "-c:v", "libtheora"], "video/ogg", "video"),
    ("out.mkv", "libx264", [*VIDEO, "-pix_fmt", "yuv420p"], "video/x-matroska", "video"),
    ("out.webm", "libvpx", [*VIDEO, "-c:v", "libvpx"], "video/webm", "video"),
    ("out.avi", "mpeg4", [*VIDEO, "-c:v", "mpeg4"], "video/x-msvideo", "video"),
    ("out.ts", "mpeg2video", [*VIDEO, "-c:v", "mpeg2video"], "video/mp2t", "video"),
    ("out.m2ts", "mpeg2video", [*VIDEO, "-c:v", "mpeg2video", "-f", "mpegts",
                                "-mpegts_m2ts_mode", "1"], "video/mp2t", "video"),
    ("out.mxf", "mpeg2video", [*VIDEO, "-c:v", "mpeg2video", "-pix_fmt", "yuv422p"],
     "application/mxf", "video"),
    ("out.png", "png", FRAME, "image/png", "image"),
    ("out.jpg", "mjpeg", [*FRAME, "-pix_fmt", "yuvj420p"], "image/jpeg", "image"),
    ("out.tif", "tiff", FRAME, "image/tiff", "image"),
    ("out.exr", "exr", [*FRAME, "-c:v", "exr", "-pix_fmt", "gbrpf32le"], "image/x-exr", "image"),
    ("out.dpx", "dpx", FRAME, "image/x-dpx", "image"),
    ("out.webp", "libwebp", [*FRAME, "-c:v", "libwebp"], "image/webp", "image"),
    ("out.gif", "gif", FRAME, "image/gif", "image"),
    ("out.wav", "pcm_s16le", AUDIO, "audio/wav", "audio"),
    ("out.aiff", "pcm_s16be", AUDIO, "audio/aiff", "audio"),
    ("out.flac", "flac", AUDIO, "audio/flac", "audio"),
    ("out.ogg", "libvorbis", [*AUDIO, "-c:a", "libvorbis"], "audio/ogg", "audio"),
    ("out.opus", "libopus", [*AUDIO, "-c:a", "libopus"], "audio/ogg", "audio"),
    ("out.mp3", "libmp3lame", [*AUDIO, "-c:a", "libmp3lame"], "audio/mpeg", "audio"),
    # No ID3 tag and no Xing frame: the first bytes are a bare MPEG audio frame header.
    ("bare.mp3", "libmp3lame", [*AUDIO, "-c:a", "libmp3lame", "-id3v2_version", "0",
                                "-write_xing", "0"], "audio/mpeg", "audio"),
    ("out.m4a", "aac", [*AUDIO, "-c:a", "aac"], "audio/mp4", "audio"),
]


@functools.cache
def _encoders() -> str:
    if shutil.which("ffmpeg") is None:
        return ""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                          text=True, check=True, timeout=30)
    return done.stdout


def _has_encoder(name: str) -> bool:
    return any(line.split()[1:2] == [name] for line in _encoders().splitlines())


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(SNIFF_BYTES)


@pytest.mark.parametrize(("name", "encoder", "args", "mime", "family"), ENCODED,
                         ids=[row[0] for row in ENCODED])
def test_real_media_from_ffmpeg_is_recognised(tmp_path, name, encoder, args, mime, family):
    if not _encoders():
        pytest.skip("ffmpeg is not installed")
    if encoder and not _has_encoder(encoder):
        pytest.skip(f"this ffmpeg has no {encoder} encoder")
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args,
                    "-threads", "1", str(out)], check=True, capture_output=True, timeout=120)
    found = sniff(_head(out))
    assert found is not None and (found.mime, found.family) == (mime, family)


def _zip_bytes(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"\x00" * 64)
    return buffer.getvalue()


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


OBJ = b"# exported\nmtllib cube.mtl\no Cube\nv 1.0 1.0 -1.0\nv -1 -1 1e-3\nvn 0 1 0\n" \
      b"vt 0.5 0.5\nusemtl Material\ns off\nf 1/1/1 2/1/1 1/1/1\n"
GLB = b"glTF" + struct.pack("<II", 2, 28) + struct.pack("<I", 4) + b"JSON" + b"{}  "
GLTF = json.dumps({"asset": {"version": "2.0", "generator": "Khronos"}, "scenes": [{}]},
                  indent=2).encode()

BUILT = {
    "blend 4.x": (b"BLENDER-v404" + b"REND" + b"\x00" * 200, "application/x-blender"),
    "blend 5.x": (b"BLENDER17-01v0500" + b"\x00" * 200, "application/x-blender"),
    "blend gzip": (gzip.compress(b"BLENDER_v279" + b"\x00" * 4000), "application/x-blender"),
    "fbx binary": (b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + bytes(64),
                   "application/vnd.autodesk.fbx"),
    "fbx ascii": (b"\n; FBX 7.4.0 project file\n; ---\nFBXHeaderExtension:  {\n",
                  "application/vnd.autodesk.fbx"),
    "alembic ogawa": (b"Ogawa\xff\x00\x01" + bytes(64), "application/x-alembic"),
    "alembic hdf5": (b"\x89HDF\r\n\x1a\n" + bytes(64), "application/x-alembic"),
    "usd crate": (b"PXR-USDC\x00\x08\x00" + bytes(64), "model/x-usd"),
    "usda": (b'#usda 1.0\n(\n    defaultPrim = "World"\n)\n', "model/vnd.usda"),
    "usdz": (_zip_bytes("a.usdc", "tex/albedo.png"), "model/vnd.usdz+zip"),
    "obj": (OBJ, "model/obj"),
    "obj with bom, no final newline": (b"\xef\xbb\xbfv 0 0 0\nf 1 1 1", "model/obj"),
    "glb": (GLB, "model/gltf-binary"),
    "gltf json": (GLTF, "model/gltf+json"),
    "zip of frames": (_zip_bytes("frame_0001.exr", "frame_0002.exr"), "application/zip"),
    "empty zip": (_zip_bytes(), "application/zip"),
    "radiance hdr": (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x80\x80\x80\x81",
                     "image/vnd.radiance"),
    "heic": (_ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
    "avif": (_ftyp(b"avif", b"mif1", b"avif"), "image/avif"),
    "avif as mif1": (_ftyp(b"mif1", b"mif1", b"avif"), "image/avif"),
    "legacy quicktime": (struct.pack(">I", 8) + b"wide" + struct.pack(">I", 16) + b"mdat",
                         "video/quicktime"),
}


@pytest.mark.parametrize("case", BUILT, ids=list(BUILT))
def test_hand_built_scene_and_still_headers_are_recognised(case):
    head, mime = BUILT[case]
    found = sniff(head)
    assert found is not None and found.mime == mime


def test_families_follow_the_media():
    families = {case: getattr(sniff(head), "family", None) for case, (head, _) in BUILT.items()}
    assert families["zip of frames"] == "archive"
    assert families["heic"] == "image" and families["legacy quicktime"] == "video"
    assert {families[c] for c in ("blend 4.x", "fbx ascii", "usdz", "obj", "glb")} == {"scene"}


REFUSED = {
    "elf (this python)": Path(sys.executable).resolve().read_bytes()[:SNIFF_BYTES],
    "windows exe": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(100),
    "shell script": b"#!/bin/sh\nset -e\nrm -rf /tmp/x\n",
    "html": b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "svg": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>\n',
    "xml": b'<?xml version="1.0"?>\n<scene><asset version="1"/></scene>\n',
    "plain text": b"Shot 010: fix the rim light on the hero.\n",
    "random bytes": random.Random(7).randbytes(SNIFF_BYTES),
    "empty": b"",
    "png magic cut short": b"\x89PNG\r\n",
    "png signature without IHDR": b"\x89PNG\r\n\x1a\n" + bytes(32),
    "gzip of text": gzip.compress(b"hello world\n" * 50),
    "zstd": b"\x28\xb5\x2f\xfd\x24\x0c\x61\x00\x00BLENDER-v404",
    "json without gltf asset": b'{"name": "shot010", "frames": [1, 2, 3]}',
    "ebml of another doctype": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84abcd",
    "adts aac": b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(64),
    "riff of another form": b"RIFF\x24\x00\x00\x00CDXA" + bytes(64),
    # FFmpeg skips an ID3 tag and probes what follows: here an HLS playlist.
    "playlist behind an id3 tag": b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)
    + b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n",
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_everything_else_is_refused(case):
    assert sniff(REFUSED[case]) is None


def test_prose_named_like_an_obj_is_refused(tmp_path):
    notes = tmp_path / "notes.obj"
    notes.write_text("Notes on the model\nv 1 is the first pass of the hero asset.\n"
                     "The second pass moves the vertices.\nAsk lighting before Friday.\n")
    assert sniff(_head(notes)) is None


def test_only_the_leading_bytes_count():
    assert sniff(b"Kaydara FBX Binary  \x00" + bytes(SNIFF_BYTES * 2)) is not None
    assert sniff(bytes(SNIFF_BYTES) + b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR") is None


MP4 = MediaType("video/mp4", "video", "MPEG-4 video")


def _code(declared: str | None, found: MediaType | None) -> str:
    with pytest.raises(UnsupportedMedia) as caught:
        check_declared(declared, found)
    return caught.value.code


def test_a_declaration_from_another_family_is_a_mismatch():
    hdr = sniff(BUILT["radiance hdr"][0])
    assert _code("image/png", MP4) == "content_type_mismatch"
    assert _code("video/mp4", hdr) == "content_type_mismatch"
    assert _code("text/plain", MP4) == "content_type_mismatch"


@pytest.mark.parametrize("declared", [None, "", "application/octet-stream",
                                      "Application/Octet-Stream; charset=binary"])
def test_no_claim_passes(declared):
    assert check_declared(declared, MP4) is MP4


def test_bytes_off_the_allowlist_are_unsupported_whatever_was_declared():
    assert _code(None, None) == "file_type_not_allowed"
    assert _code("video/mp4", sniff(REFUSED["html"])) == "file_type_not_allowed"


@pytest.mark.parametrize(("declared", "head"), [
    ("video/quicktime", _ftyp(b"isom", b"isom", b"mp41")),
    ("video/mp4", _ftyp(b"qt  ", b"qt  ")),
    ("image/jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("audio/x-wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ("video/x-matroska", b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm"),
    ("image/aces", b"v/1\x01\x02\x00\x00\x00"),
    ("text/plain", OBJ),
    ("application/json", GLTF),
    ("application/x-zip-compressed", _zip_bytes("frame_0001.exr")),
])
def test_compatible_declarations_pass(declared, head):
    found = sniff(head)
    assert found is not None and check_declared(declared, found) is found


def test_parameters_and_case_are_ignored():
    assert check_declared("Video/MP4; codecs=\"avc1.64001f\"", MP4) is MP4
    assert _code("image/png; charset=utf-8", MP4) == "content_type_mismatch"


def test_a_mismatch_names_both_types():
    with pytest.raises(UnsupportedMedia) as caught:
        check_declared("image/png", MP4)
    assert caught.value.details == [{"declared": "image/png", "found": "video/mp4"}]
    assert "MPEG-4 video" in caught.value.message
