"""A minimal OLE2 compound-file writer (MS-CFB version 3) to build Xradia test files.

olefile, which xafsmap reads Xradia files with, can only overwrite streams of an
existing file, not create one; this writes what the [MS-CFB] specification lays out:
a 512-byte header, 512-byte sectors chained by the FAT, a directory of 128-byte
entries (storages and streams, each storage's children a binary tree by CFB name
order), and streams under 4096 bytes in the mini stream (64-byte sectors, mini FAT).
Files up to 109 FAT sectors (~7 MB) need no DIFAT, which is all tests need.
"""

from __future__ import annotations

import struct

SECTOR, MINI, CUTOFF = 512, 64, 4096
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _key(name: str):
    """CFB sibling order: shorter names first, then by upper-case UTF-16."""
    return (len(name), name.upper())


def _entry(name, kind, child=NOSTREAM, right=NOSTREAM, start=END, size=0) -> bytes:
    encoded = (name.encode("utf-16-le") + b"\0\0") if name else b""
    return struct.pack("<64sHBBIII16sIQQIQ", encoded.ljust(64, b"\0"), len(encoded), kind, 1,
                       NOSTREAM, right, child, b"\0" * 16, 0, 0, 0, start, size)


def write_ole(path, streams: dict[str, bytes]) -> None:
    """Write ``{"Storage/Sub/Stream": bytes}`` as an OLE2 compound file."""
    # directory tree: storages created from the stream paths
    tree: dict = {}
    for full, data in streams.items():
        node = tree
        *parents, leaf = full.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = bytes(data)
    entries, mini, big = [], bytearray(), []

    def add(name, node) -> int:
        index = len(entries)
        entries.append(None)
        if isinstance(node, bytes):
            if len(node) < CUTOFF:
                start = len(mini) // MINI
                mini.extend(node.ljust(-(-len(node) // MINI) * MINI or MINI, b"\0"))
                entries[index] = ("mini", name, start, len(node))
            else:
                big.append(node)
                entries[index] = ("big", name, len(big) - 1, len(node))
            return index
        children = [add(child, node[child]) for child in sorted(node, key=_key)]
        entries[index] = ("storage", name, children)
        return index

    root_children = [add(child, tree[child]) for child in sorted(tree, key=_key)]
    # sectors: FAT | directory | mini FAT | mini stream | big streams
    n_dir = -(-(len(entries) + 1) // 4)
    mini_sectors = len(mini) // MINI
    n_minifat = -(-mini_sectors * 4 // SECTOR) if mini_sectors else 0
    n_ministream = -(-len(mini) // SECTOR)
    n_big = [-(-len(b) // SECTOR) for b in big]
    rest = n_dir + n_minifat + n_ministream + sum(n_big)
    n_fat = 1
    while n_fat * SECTOR // 4 < n_fat + rest:
        n_fat += 1
    assert n_fat <= 109, "test files this large need a DIFAT"
    fat = [FATSECT] * n_fat
    cursor = n_fat

    def chain(count) -> int:
        nonlocal cursor
        if count == 0:
            return END
        first = cursor
        fat.extend(list(range(cursor + 1, cursor + count)) + [END])
        cursor += count
        return first

    dir_start, minifat_start = chain(n_dir), chain(n_minifat)
    ministream_start = chain(n_ministream)
    big_starts = [chain(n) for n in n_big]
    # directory entries: index 0 is the root; others shift by one
    def right_of(indices, i):
        return indices[i + 1] + 1 if i + 1 < len(indices) else NOSTREAM

    blobs = [_entry("Root Entry", 5, child=root_children[0] + 1 if root_children else NOSTREAM,
                    start=ministream_start if mini else END, size=len(mini))]
    siblings = {}
    for group in [root_children] + [e[2] for e in entries if e[0] == "storage"]:
        for i, index in enumerate(group):
            siblings[index] = right_of(group, i)
    for index, entry in enumerate(entries):
        kind, name = entry[0], entry[1]
        if kind == "storage":
            child = entry[2][0] + 1 if entry[2] else NOSTREAM
            blobs.append(_entry(name, 1, child=child, right=siblings[index]))
        elif kind == "mini":
            blobs.append(_entry(name, 2, right=siblings[index], start=entry[2], size=entry[3]))
        else:
            blobs.append(_entry(name, 2, right=siblings[index], start=big_starts[entry[2]], size=entry[3]))
    directory = b"".join(blobs).ljust(n_dir * SECTOR, b"\0")
    # unused directory slots: empty entries with no siblings
    empty = _entry("", 0)
    directory = b"".join(blobs) + empty * (n_dir * 4 - len(blobs))
    minifat = []
    for entry in entries:
        if entry[0] == "mini":
            count = max(1, -(-entry[3] // MINI))
            minifat.extend(list(range(entry[2] + 1, entry[2] + count)) + [END])
    minifat_bytes = struct.pack(f"<{len(minifat)}I", *minifat).ljust(n_minifat * SECTOR, b"\xff")
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat).ljust(n_fat * SECTOR, b"\xff")
    difat = list(range(n_fat)) + [FREE] * (109 - n_fat)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII109I", bytes.fromhex("D0CF11E0A1B11AE1"), b"\0" * 16,
                         0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6, 0, n_fat, dir_start, 0, CUTOFF,
                         minifat_start, n_minifat, END, 0, *difat)
    body = [header, fat_bytes, directory, minifat_bytes, bytes(mini).ljust(n_ministream * SECTOR, b"\0")]
    body += [b.ljust(n * SECTOR, b"\0") for b, n in zip(big, n_big)]
    with open(path, "wb") as f:
        f.write(b"".join(body))


def xradia_streams(images, *, energies=None, reference=None, data_type=10, motors=None) -> dict:
    """The streams of an Xradia ``.txrm`` holding ``images`` (n, rows, cols).

    ``energies`` go to ``ImageInfo/Energy``; ``motors`` (names, values (n, k)) to
    ``PositionInfo``; ``reference`` (rows, cols) to ``ReferenceData/Image``.
    """
    import numpy as np

    dtype = {10: "<f4", 5: "<u2"}[data_type]
    n, rows, cols = images.shape
    streams = {
        "ImageInfo/ImageWidth": struct.pack("<I", cols),
        "ImageInfo/ImageHeight": struct.pack("<I", rows),
        "ImageInfo/NoOfImages": struct.pack("<I", n),
        "ImageInfo/ImagesTaken": struct.pack("<I", n),
        "ImageInfo/DataType": struct.pack("<I", data_type),
    }
    for i, image in enumerate(images, start=1):
        streams[f"ImageData{-(-i // 100)}/Image{i}"] = np.ascontiguousarray(image, dtype=dtype).tobytes()
    if energies is not None:
        streams["ImageInfo/Energy"] = np.asarray(energies, "<f4").tobytes()
    if motors is not None:
        names, values = motors
        streams["PositionInfo/TotalAxis"] = struct.pack("<I", len(names))
        streams["PositionInfo/AxisNames"] = b"".join(name.encode() + b"\0" for name in names)
        streams["PositionInfo/MotorPositions"] = np.asarray(values, "<f4").tobytes()
    if reference is not None:
        streams["ReferenceData/Image"] = np.ascontiguousarray(reference, dtype=dtype).tobytes()
        streams["ReferenceData/DataType"] = struct.pack("<I", data_type)
    return streams
