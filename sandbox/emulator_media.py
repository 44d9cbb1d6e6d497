"""Files for the Bot API emulator: stored uploads, PhotoSize/Document objects and image sniffing."""

from __future__ import annotations

import base64
import mimetypes
import struct
from dataclasses import dataclass, field

from sandbox.emulator_params import Params, Upload
from sandbox.emulator_state import Emulator, Json, bad_request

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
# Telegram keeps a photo in several sizes: the bounding boxes of its "s", "m", "x", "y" and "w" variants.
_PHOTO_BOXES = (90, 320, 800, 1280, 2560)
_URL_PHOTO_SIZE = (800, 600)  # URLs are not fetched (no network); pretend a typical picture


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # "photo" or "document"
    data: bytes | None  # None when sent by URL, which the emulator does not download
    file_name: str = ""
    mime_type: str = ""
    photo_sizes: list[Json] = field(default_factory=list)  # for photos: every size, smallest first

    @property
    def file_path(self) -> str:
        extension = ".jpg" if self.kind == "photo" else (mimetypes.guess_extension(self.mime_type) or "")
        return f"{self.kind}s/file_{self.file_unique_id}{extension}"


def _ids(emulator: Emulator, kind: str) -> tuple[str, str]:
    number = emulator.next_id()
    prefix = "AgACAgIAAxkBAAI" if kind == "photo" else "BQACAgIAAxkBAAI"
    unique = base64.urlsafe_b64encode(struct.pack(">Q", number)).decode().rstrip("=")
    return f"{prefix}{unique}{number:08d}", f"AQAD{unique}"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF, BMP or WebP image; None when the bytes are not one."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(int(width)), abs(int(height))
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _photo_sizes(emulator: Emulator, width: int, height: int, byte_size: int | None) -> list[Json]:
    sizes: list[Json] = []
    longest = max(width, height)
    for box in _PHOTO_BOXES:
        scale = min(1.0, box / longest)
        size_w, size_h = max(1, round(width * scale)), max(1, round(height * scale))
        file_id, unique_id = _ids(emulator, "photo")
        size: Json = {"file_id": file_id, "file_unique_id": unique_id, "width": size_w, "height": size_h}
        if byte_size is not None:
            size["file_size"] = max(1, round(byte_size * scale * scale))
        sizes.append(size)
        if scale == 1.0:
            break
    return sizes


def store_photo(emulator: Emulator, params: Params, name: str = "photo") -> StoredFile:
    """Resolve the ``photo`` argument (upload, known file_id or URL) into a stored photo."""
    upload, reference = params.file(name), params.get(name)
    if upload is None:
        return _reuse(emulator, reference, "photo")
    if not upload.data:
        raise bad_request("file must be non-empty")
    if len(upload.data) > MAX_PHOTO_BYTES:
        raise bad_request("PHOTO_SAVE_FILE_INVALID")
    dimensions = image_size(upload.data)
    if dimensions is None:
        raise bad_request("IMAGE_PROCESS_FAILED")
    width, height = dimensions
    if width + height > 10000 or min(width, height) == 0 or max(width, height) / min(width, height) > 20:
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return _register_photo(emulator, upload.data, width, height)


def _register_photo(emulator: Emulator, data: bytes | None, width: int, height: int) -> StoredFile:
    sizes = _photo_sizes(emulator, width, height, None if data is None else len(data))
    largest = sizes[-1]
    stored = StoredFile(largest["file_id"], largest["file_unique_id"], "photo", data, photo_sizes=sizes)
    for size in sizes:
        emulator.files[size["file_id"]] = stored
    return stored


def store_document(emulator: Emulator, params: Params, name: str = "document") -> StoredFile:
    upload: Upload | None = params.file(name)
    if upload is None:
        return _reuse(emulator, params.get(name), "document")
    if not upload.data:
        raise bad_request("file must be non-empty")
    if len(upload.data) > MAX_DOCUMENT_BYTES:
        raise bad_request("file is too big")
    file_id, unique_id = _ids(emulator, "document")
    mime_type = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    stored = StoredFile(file_id, unique_id, "document", upload.data, upload.filename, mime_type)
    emulator.files[file_id] = stored
    return stored


def _reuse(emulator: Emulator, reference: str, kind: str) -> StoredFile:
    if not reference:
        raise bad_request(f"there is no {kind} in the request")
    known = emulator.files.get(reference)
    if known is not None:
        return known
    if reference.startswith(("http://", "https://")):
        if kind == "photo":
            return _register_photo(emulator, None, *_URL_PHOTO_SIZE)
        file_id, unique_id = _ids(emulator, kind)
        name = reference.rstrip("/").rsplit("/", 1)[-1] or "file"
        mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        stored = StoredFile(file_id, unique_id, kind, None, name, mime_type)
        emulator.files[file_id] = stored
        return stored
    raise bad_request("wrong file identifier/HTTP URL specified")


def media_content(stored: StoredFile) -> Json:
    """The Message fields describing the file: ``photo`` sizes or a ``document``."""
    if stored.kind == "photo":
        return {"photo": [dict(size) for size in stored.photo_sizes]}
    document: Json = {"file_name": stored.file_name, "mime_type": stored.mime_type}
    document.update(file_id=stored.file_id, file_unique_id=stored.file_unique_id)
    if stored.data is not None:
        document["file_size"] = len(stored.data)
    return {"document": document}


def file_object(stored: StoredFile, file_id: str) -> Json:
    """The Bot API ``File`` for ``getFile``."""
    size = next((s for s in stored.photo_sizes if s["file_id"] == file_id), None)
    if size is not None:  # one of a photo's scaled copies
        result = {k: size[k] for k in ("file_id", "file_unique_id", "file_size") if k in size}
    else:
        result = {"file_id": file_id, "file_unique_id": stored.file_unique_id}
        if stored.data is not None:
            result["file_size"] = len(stored.data)
    if stored.data is not None:
        result["file_path"] = stored.file_path
    return result
