"""The glTF container and its accessors: read the JSON and binary chunks, a buffer view's data,
an accessor's values as glTF defines them (strides, sparse substitutions), and write a GLB.

Its own module because both the pre-pass that makes files trimesh reads right
(:mod:`gencritic.mesh.gltf_prepare`) and the features it applies (:mod:`gencritic.mesh.gltf_features`)
read accessors, and the pre-pass calls the features: this is what they share, below both.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from gencritic.errors import ItemError

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942

# componentType -> (numpy dtype, divisor for normalized values; glTF 2.0 §3.11)
COMPONENTS: dict[int, tuple[str, float]] = {
    5120: ("<i1", 127.0), 5121: ("<u1", 255.0), 5122: ("<i2", 32767.0), 5123: ("<u2", 65535.0),
    5125: ("<u4", 0.0), 5126: ("<f4", 0.0),
}
WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def read_document(path: Path, with_binary: bool = False) -> tuple[dict[str, Any], bytes | None]:
    """(glTF JSON, GLB binary chunk or None). Only the JSON chunk is read unless ``with_binary``:
    most files need no rewrite, and trimesh reads the whole file anyway."""
    with path.open("rb") as f:
        head = f.read(20)
        if head[:4] != GLB_MAGIC:
            return json.loads(head + f.read()), None
        if len(head) < 20:
            raise ItemError(f"cannot read mesh {path.name}: truncated GLB header")
        length, chunk_type = struct.unpack_from("<II", head, 12)
        text = f.read(length)
        if chunk_type != CHUNK_JSON or len(text) != length:
            raise ItemError(f"cannot read mesh {path.name}: the GLB's first chunk is not its JSON")
        doc = json.loads(text)
        binary = None
        if with_binary:
            f.seek(20 + length + (-length % 4))
            chunk = f.read(8)
            if len(chunk) == 8:
                bin_length, bin_type = struct.unpack("<II", chunk)
                if bin_type == CHUNK_BIN:
                    binary = f.read(bin_length)
        return doc, binary


def buffer_bytes(doc: dict[str, Any], index: int, binary: bytes | None, folder: Path, name: str) -> bytes:
    buffer = (doc.get("buffers") or [])[index]
    uri = buffer.get("uri")
    if uri is None:
        if binary is None:
            raise ItemError(f"cannot read mesh {name}: buffer {index} has no URI and the file has no binary chunk")
        return binary
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    target = folder / unquote(uri)
    if not target.is_file():
        raise ItemError(f"mesh {name} refers to buffer file {uri}, which is missing beside it")
    return target.read_bytes()


class Buffers:
    """The document's buffers, read on first use."""

    def __init__(self, doc: dict[str, Any], binary: bytes | None, folder: Path, name: str) -> None:
        self.doc, self.binary, self.folder, self.name = doc, binary, folder, name
        self._data: dict[int, bytes] = {}

    def view(self, index: int) -> tuple[bytes, int, int]:
        """(buffer bytes, byte offset, byte stride or 0) of buffer view ``index``."""
        view = self.doc["bufferViews"][index]
        buffer = int(view["buffer"])
        if buffer not in self._data:
            self._data[buffer] = buffer_bytes(self.doc, buffer, self.binary, self.folder, self.name)
        return self._data[buffer], int(view.get("byteOffset", 0)), int(view.get("byteStride", 0))


def read_view(buffers: Buffers, view_index: int, offset: int, component: int, width: int, count: int) -> np.ndarray:
    """(count, width) components of type ``component`` from a buffer view (its stride honoured)."""
    dtype = np.dtype(COMPONENTS[component][0])
    data, start, stride = buffers.view(view_index)
    start += offset
    item = dtype.itemsize * width
    stride = stride or item
    if count and start + stride * (count - 1) + item > len(data):
        raise ItemError("an accessor reads past the end of its buffer (corrupt file)")
    rows = np.ndarray((count,), dtype=np.dtype((np.void, item)), buffer=data, offset=start, strides=(stride,))
    return np.frombuffer(rows.tobytes(), dtype=dtype).reshape(count, width)


def dense_values(acc: dict[str, Any], buffers: Buffers) -> np.ndarray:
    """The accessor's components as glTF defines them: its buffer view (or zeros when it has
    none), with the sparse substitutions applied."""
    component, width, count = int(acc["componentType"]), WIDTH[acc["type"]], int(acc["count"])
    if "bufferView" in acc:
        values = read_view(buffers, int(acc["bufferView"]), int(acc.get("byteOffset", 0)), component, width, count).copy()
    else:
        values = np.zeros((count, width), dtype=COMPONENTS[component][0])
    sparse = acc.get("sparse")
    if sparse:
        n = int(sparse["count"])
        idx_spec, val_spec = sparse["indices"], sparse["values"]
        where = read_view(buffers, int(idx_spec["bufferView"]), int(idx_spec.get("byteOffset", 0)),
                      int(idx_spec["componentType"]), 1, n)[:, 0].astype(np.int64)
        if n and (where.min() < 0 or where.max() >= count):
            raise ItemError("a sparse accessor substitutes elements outside the accessor (corrupt file)")
        values[where] = read_view(buffers, int(val_spec["bufferView"]), int(val_spec.get("byteOffset", 0)),
                              component, width, n)
    return values


def to_glb(doc: dict[str, Any], binary: bytes | None) -> bytes:
    """A GLB of ``doc`` with ``binary`` as its binary chunk (what buffer 0 without a URI reads)."""
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), CHUNK_JSON) + text
    if binary is not None:
        body = binary + b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(body), CHUNK_BIN) + body
    return GLB_MAGIC + struct.pack("<II", 2, 12 + len(chunks)) + chunks
