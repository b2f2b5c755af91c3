"""Chunk CRCs in the MCAP bags armpilot writes (rosbags writes 0: "no CRC").

rosbags' ``McapWriter.close_chunk`` writes each Chunk record (opcode 0x06) as
opcode (1 byte), record length (8), message start and end time (8 + 8),
uncompressed size (8), uncompressed CRC32 (4), ... The subclass here lets it
write the record, then fills in the CRC32 of the chunk's uncompressed records
(MCAP spec: "uncompressed_crc"). Readers that check CRCs (rosbags' reader when
non-zero, mcap's readers with ``validate_crcs``) then catch flipped bytes.
``CrcWriter`` is rosbags' rosbag2 ``Writer`` with it as the MCAP storage; it
refuses a rosbags version whose chunk layout it has not been checked against.
"""

from __future__ import annotations

import struct
import zlib
from importlib.metadata import version

from rosbags.rosbag2 import Writer, storage_mcap
from rosbags.rosbag2.enums import StoragePlugin

#: rosbags versions whose Chunk layout this module was checked against (test_recorder reads the CRCs back).
CHECKED_ROSBAGS = ("0.11.",)
#: Bytes from the start of a Chunk record to its uncompressed_crc field.
CRC_OFFSET = 1 + 8 + 8 + 8 + 8


class CrcMcapWriter(storage_mcap.McapWriter):
    """rosbags' MCAP writer, with the CRC32 of each chunk's uncompressed records filled in."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        installed = version("rosbags")
        if not installed.startswith(CHECKED_ROSBAGS):
            raise RuntimeError(f"rosbags {installed}: chunk CRCs were checked against {CHECKED_ROSBAGS} only; "
                               "pin rosbags or check armpilot/recording/mcap_crc.py against the new version")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def close_chunk(self) -> None:
        crc = zlib.crc32(self.chunk.bio.getvalue()) & 0xFFFFFFFF
        start = self.bio.tell()
        super().close_chunk()
        end = self.bio.tell()  # the Chunk record is the first thing close_chunk writes (write-only file)
        self.bio.seek(start + CRC_OFFSET)
        self.bio.write(struct.pack("<I", crc))
        self.bio.seek(end)


class CrcWriter(Writer):
    """rosbags' rosbag2 ``Writer`` whose MCAP files carry chunk CRCs."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: CrcMcapWriter}
