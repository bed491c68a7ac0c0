"""Content checks for studio uploads: what the leading bytes are, never what the name says.

A file name and a declared MIME type come from the client and prove nothing, so the allowlist
is decided by magic numbers and the structure of the first `SNIFF_BYTES` bytes. Anything else
(scripts, HTML, PDFs, executables, plain text, SVG/XML, blind gzip or zstd) is refused: a false
"no" costs a re-upload, a false "yes" puts an unknown file before every reviewer and farm node.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.errors import UnsupportedMedia

SNIFF_BYTES = 8192  # how many leading bytes callers should pass


@dataclass(frozen=True)
class MediaType:
    mime: str
    family: str  # one of: video, image, audio, scene, archive
    label: str


_T = {key: MediaType(mime, family, label) for key, mime, family, label in (
    ("mp4", "video/mp4", "video", "MPEG-4 video"),
    ("mov", "video/quicktime", "video", "QuickTime movie"),
    ("webm", "video/webm", "video", "WebM video"),
    ("mkv", "video/x-matroska", "video", "Matroska video"),
    ("avi", "video/x-msvideo", "video", "AVI video"),
    ("ts", "video/mp2t", "video", "MPEG transport stream"),
    ("mxf", "application/mxf", "video", "MXF video"),
    ("ogv", "video/ogg", "video", "Ogg video"),
    ("png", "image/png", "image", "PNG image"),
    ("jpeg", "image/jpeg", "image", "JPEG image"),
    ("exr", "image/x-exr", "image", "OpenEXR image"),
    ("dpx", "image/x-dpx", "image", "DPX image"),
    ("tiff", "image/tiff", "image", "TIFF image"),
    ("webp", "image/webp", "image", "WebP image"),
    ("gif", "image/gif", "image", "GIF image"),
    ("hdr", "image/vnd.radiance", "image", "Radiance HDR image"),
    ("heic", "image/heic", "image", "HEIC image"),
    ("heif", "image/heif", "image", "HEIF image"),
    ("avif", "image/avif", "image", "AVIF image"),
    ("wav", "audio/wav", "audio", "WAV audio"),
    ("aiff", "audio/aiff", "audio", "AIFF audio"),
    ("flac", "audio/flac", "audio", "FLAC audio"),
    ("ogg", "audio/ogg", "audio", "Ogg audio"),
    ("mp3", "audio/mpeg", "audio", "MP3 audio"),
    ("m4a", "audio/mp4", "audio", "MPEG-4 audio"),
    ("blend", "application/x-blender", "scene", "Blender scene"),
    ("fbx", "application/vnd.autodesk.fbx", "scene", "FBX scene (binary)"),
    ("fbx_ascii", "application/vnd.autodesk.fbx", "scene", "FBX scene (ASCII)"),
    ("abc", "application/x-alembic", "scene", "Alembic scene (Ogawa)"),
    ("abc_hdf5", "application/x-alembic", "scene", "Alembic scene (HDF5)"),
    ("usdc", "model/x-usd", "scene", "USD scene (crate)"),
    ("usda", "model/vnd.usda", "scene", "USD scene (ASCII)"),
    ("usdz", "model/vnd.usdz+zip", "scene", "USDZ package"),
    ("obj", "model/obj", "scene", "Wavefront OBJ"),
    ("glb", "model/gltf-binary", "scene", "glTF binary"),
    ("gltf", "model/gltf+json", "scene", "glTF JSON"),
    ("zip", "application/zip", "archive", "zip of frames"),
)}

# Fixed prefixes at offset 0. PNG includes the IHDR chunk that must follow the signature.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",),
    "jpeg": (b"\xff\xd8\xff",), "exr": (b"v/1\x01",), "dpx": (b"SDPX", b"XPDS"),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),  # the last two are BigTIFF
    "gif": (b"GIF87a", b"GIF89a"), "hdr": (b"#?RADIANCE", b"#?RGBE"), "flac": (b"fLaC",),
    "mxf": (b"\x06\x0e\x2b\x34\x02\x05\x01\x01\x0d\x01\x02",),  # header partition key
    "fbx": (b"Kaydara FBX Binary  \x00",), "usdc": (b"PXR-USDC",), "usda": (b"#usda",),
    "abc": (b"Ogawa",), "abc_hdf5": (b"\x89HDF\r\n\x1a\n",),
    "glb": (b"glTF\x02\x00\x00\x00",),  # container version 2, little-endian
    "zip": (b"PK\x05\x06",),  # an empty zip: end-of-central-directory only
}

# "BLENDER-v404" / "BLENDER_v279" up to 4.x; "BLENDER17-01v0500" from 5.0.
_BLEND_HEADER = re.compile(rb"BLENDER(?:[-_][vV]\d{3}|\d\d-\d\d[vV]\d{4})")
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc",
                           b"hevx", b"mif1", b"msf1"})
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"pnot"})  # old QuickTime: no "ftyp" box
_RIFF_FORMS = {b"AVI ": "avi", b"WAVE": "wav", b"WEBP": "webp"}


def _magic(head: bytes) -> MediaType | None:
    for key, prefixes in _MAGIC.items():
        if head.startswith(prefixes):
            return _T[key]
    return None


def _iso_bmff(head: bytes) -> MediaType | None:
    size = int.from_bytes(head[:4], "big")
    if head[4:8] in _QT_ATOMS and size >= 8:
        return _T["mov"]
    if head[4:8] != b"ftyp" or size < 16 or len(head) < 16:
        return None
    major = head[8:12]
    brands = {major} | {head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    if major == b"qt  ":
        return _T["mov"]
    if major in _AUDIO_BRANDS:
        return _T["m4a"]
    if major in _IMAGE_BRANDS:
        if brands & {b"avif", b"avis"}:
            return _T["avif"]
        return _T["heic"] if brands & {b"heic", b"heix", b"heim", b"heis"} else _T["heif"]
    return _T["mp4"]


def _matroska(head: bytes) -> MediaType | None:
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    at = head.find(b"\x42\x82", 4, 64)  # the EBML DocType element
    if at < 0 or at + 3 > len(head) or not head[at + 2] & 0x80:
        return None
    length = head[at + 2] & 0x7F  # one-byte size, which is what every muxer writes
    doctype = head[at + 3:at + 3 + length]
    return {b"webm": _T["webm"], b"matroska": _T["mkv"]}.get(doctype)


def _riff_aiff_ogg(head: bytes) -> MediaType | None:
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] in _RIFF_FORMS:
        return _T[_RIFF_FORMS[head[8:12]]]
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return _T["aiff"]
    if head.startswith(b"OggS"):
        return _T["ogv"] if b"\x80theora" in head[:64] else _T["ogg"]
    return None


def _transport_stream(head: bytes) -> MediaType | None:
    # 188-byte packets (.ts), or 192-byte ones with a 4-byte timecode first (.m2ts/.mts).
    for first, step in ((0, 188), (4, 192)):
        at = (first, first + step, first + 2 * step)
        if len(head) > at[2] and all(head[i] == 0x47 for i in at):
            return _T["ts"]
    return None


def _zip(head: bytes) -> MediaType | None:
    if not head.startswith(b"PK\x03\x04") or len(head) < 30:
        return None
    name_length = int.from_bytes(head[26:28], "little")
    first_name = head[30:30 + name_length].lower()
    return _T["usdz"] if first_name.endswith((b".usdc", b".usda", b".usd")) else _T["zip"]


def _blend(head: bytes) -> MediaType | None:
    if _BLEND_HEADER.match(head):
        return _T["blend"]
    # A gzip .blend (before Blender 3.0) passes only when the inflated start is a Blender header;
    # the output is capped, so a gzip bomb costs nothing. zstd ones (3.0+) cannot be confirmed
    # without a zstd decoder (none in the standard library before 3.14): refused, like any zstd.
    if not head.startswith(b"\x1f\x8b"):
        return None
    try:
        start = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
    except zlib.error:
        return None
    return _T["blend"] if _BLEND_HEADER.match(start) else None


def _mp3(head: bytes) -> MediaType | None:
    if head.startswith(b"ID3") and len(head) >= 10:
        # ID3v2: major version 2-4, no undefined flag bits, a "synchsafe" size (7 bits a byte).
        valid = head[3] in (2, 3, 4) and not head[5] & 0x0F and all(b < 0x80 for b in head[6:10])
        if not valid:
            return None
        # FFmpeg skips the tag and probes what follows, so a playlist behind a tag would
        # be read as one: what follows must be an MPEG audio frame. A tag longer than the
        # leading bytes (cover art) cannot be seen past here; the preview tools' format
        # allowlist is the guard then.
        size = sum(b << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        after = 10 + size + (10 if head[5] & 0x10 else 0)
        if after + 4 <= len(head):
            return _mpeg_frame(head[after:after + 4])
        return _T["mp3"]
    return _mpeg_frame(head)


def _mpeg_frame(head: bytes) -> MediaType | None:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, sample_rate = head[2] >> 4, (head[2] >> 2) & 3
    # 01 is a reserved version, 00 a reserved layer (ADTS AAC), 0/15 free or bad bitrates.
    if version == 1 or layer == 0 or bitrate in (0, 15) or sample_rate == 3:
        return None
    return _T["mp3"]


_OBJ_KEYWORDS = frozenset({
    "v", "vn", "vt", "vp", "f", "l", "p", "o", "g", "s", "usemtl", "mtllib", "mg", "lod",
    "cstype", "deg", "curv", "curv2", "surf", "parm", "trim", "hole", "end", "bmat", "step",
    "con", "usemap", "maplib", "shadow_obj", "trace_obj", "bevel", "c_interp", "d_interp",
})
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_GLTF_ASSET = re.compile(r'"asset"\s*:\s*\{')


def _is_obj(text: str) -> bool:
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines.pop()  # cut off at SNIFF_BYTES
    statements = [line.split() for line in lines if line.strip()]
    statements = [tokens for tokens in statements if not tokens[0].startswith("#")]
    known = sum(1 for tokens in statements if tokens[0] in _OBJ_KEYWORDS)
    has_vertex = any(
        tokens[0] == "v" and len(tokens) >= 4 and all(_NUMBER.match(t) for t in tokens[1:4])
        for tokens in statements
    )
    return has_vertex and known >= 0.9 * len(statements)


def _text_scene(head: bytes) -> MediaType | None:
    if b"\x00" in head:
        return None
    try:  # not final: the head may end inside a multi-byte character
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    first_line = next(line for line in text.splitlines() if line.strip())
    if first_line.lstrip().startswith("; FBX"):
        return _T["fbx_ascii"]
    if text.lstrip().startswith("{") and _GLTF_ASSET.search(text):
        return _T["gltf"]
    return _T["obj"] if _is_obj(text) else None


# Strict checks first; the weak ones (MP3 frame sync, text heuristics) only see what is left.
_SNIFFERS: tuple[Callable[[bytes], MediaType | None], ...] = (
    _magic, _iso_bmff, _matroska, _riff_aiff_ogg, _zip, _blend,
    _transport_stream, _mp3, _text_scene,
)


def sniff(head: bytes) -> MediaType | None:
    """The media type the leading bytes show, or None when not on the allowlist."""
    head = bytes(head[:SNIFF_BYTES])
    for sniffer in _SNIFFERS:
        found = sniffer(head)
        if found is not None:
            return found
    return None


# Declarations that say nothing about the content.
_NO_CLAIM = frozenset({"", "application/octet-stream", "binary/octet-stream",
                       "application/unknown"})
_TEXT_SCENES = frozenset({"model/obj", "model/vnd.usda", "model/gltf+json",
                          "application/vnd.autodesk.fbx"})
# Names that clients send for the same content. Some are extension collisions in common
# MIME tables (Python's mimetypes says .ts is text/vnd.trolltech.linguist, .abc is
# text/vnd.abc, .exr is image/aces), which an honest client would still declare.
_COMPATIBLE: tuple[frozenset[str], ...] = tuple(frozenset(group.split()) for group in (
    "video/mp4 video/quicktime video/x-m4v video/3gpp video/3gpp2 application/mp4",
    "video/webm video/x-matroska video/matroska audio/webm audio/x-matroska",
    "video/x-msvideo video/avi video/msvideo", "application/mxf video/mxf",
    "video/mp2t video/vnd.dlna.mpeg-tts model/vnd.mts text/vnd.trolltech.linguist",
    "video/ogg audio/ogg application/ogg audio/opus audio/vorbis",
    "image/jpeg image/jpg image/pjpeg", "image/png image/x-png",
    "image/x-exr image/exr image/aces application/x-exr",
    "image/x-dpx image/dpx", "image/tiff image/tif image/x-tiff",
    "image/heic image/heif image/heic-sequence image/heif-sequence",
    "image/vnd.radiance image/x-hdr image/x-radiance image/hdr",
    "audio/wav audio/x-wav audio/wave audio/vnd.wave",
    "audio/aiff audio/x-aiff", "audio/flac audio/x-flac",
    "audio/mpeg audio/mp3 audio/x-mp3 audio/mpeg3 audio/x-mpeg",
    "audio/mp4 audio/x-m4a audio/m4a",
    "application/x-blender application/x-blend",
    "application/vnd.autodesk.fbx application/x-fbx model/fbx model/x-fbx",
    "application/x-alembic application/x-abc model/x-alembic text/vnd.abc",
    "model/x-usd model/vnd.usda model/vnd.usd model/usd application/x-usd",
    "model/gltf+json application/json",
    "application/zip application/x-zip-compressed application/x-zip multipart/x-zip",
))


def _compatible(declared: str, found: MediaType) -> bool:
    if declared == "text/plain" and found.mime in _TEXT_SCENES:
        return True
    return any(declared in group and found.mime in group for group in _COMPATIBLE)


def check_declared(declared: str | None, found: MediaType | None) -> MediaType:
    """The allowed media type `found`, checked against the client's declared MIME type.

    Raises UnsupportedMedia with code `file_type_not_allowed` when the bytes are not on the
    allowlist, and `content_type_mismatch` when a declaration contradicts them. None, empty
    and application/octet-stream claim nothing; parameters such as `; charset=` are ignored.
    """
    if found is None:
        raise UnsupportedMedia(
            "the file's content is not an allowed studio media type",
            code="file_type_not_allowed",
        )
    claim = (declared or "").split(";", 1)[0].strip().lower()
    if claim in _NO_CLAIM or claim == found.mime or _compatible(claim, found):
        return found
    raise UnsupportedMedia(
        f"declared {claim} but the content is {found.label} ({found.mime})",
        code="content_type_mismatch",
        details=[{"declared": claim, "found": found.mime}],
    )
