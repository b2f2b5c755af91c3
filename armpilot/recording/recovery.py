"""What happens to a crashed recorder's leftovers (pure, no rclpy).

Policy, applied when an ``EpisodeRecorder`` opens ``OUT``:

* ``OUT/.episode_N.partial/episode_N/`` **with** ``metadata.yaml`` (killed
  between closing and renaming): renamed to ``OUT/episode_N`` as is.
* the same **without** metadata (killed mid-episode): **recovered**. Every
  MCAP chunk that reached the disk is read back (``mcap``'s stream reader, up
  to the first truncated record) and rewritten as a new, complete bag
  ``OUT/episode_N`` (index, summary and ``metadata.yaml``, custom data
  ``armpilot.recovered: 'true'``); the partial folder is then deleted. What
  was lost is the last, unclosed chunk: at most ``chunk_interval_s`` of data.
* nothing readable (no MCAP file, no complete chunk, unknown types) or a
  name clash with a finished episode: **moved aside** to
  ``OUT/.crashed/episode_N-<unix time>`` and never touched again; the
  episode number stays taken.
* ``OUT/.episode_N.recovery/`` (a recovery that was itself interrupted):
  deleted, then recovery starts again from the untouched partial folder.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys.store import Typestore

from armpilot.recording.episode_bag import BAG_VERSION, episode_name
from armpilot.recording.mcap_crc import CrcWriter

CRASHED = ".crashed"


@dataclass(frozen=True)
class RecoveryResult:
    """What was done with one leftover episode."""

    episode: int
    action: str  # "renamed" | "recovered" | "moved_aside"
    path: Path
    messages: int
    detail: str

    def line(self) -> str:
        return f"{episode_name(self.episode)}: {self.action} -> {self.path} ({self.messages} messages; {self.detail})"


def recover_leftovers(out: Path, typestore: Typestore) -> list[RecoveryResult]:
    """Apply the policy above to every leftover in ``out``; returns what was done, by episode."""
    for stale in out.glob(".episode_*.recovery"):
        shutil.rmtree(stale, ignore_errors=True)
    results = []
    for partial in sorted(out.glob(".episode_*.partial")):
        try:
            index = int(partial.name[len(".episode_"):-len(".partial")])
        except ValueError:
            continue
        results.append(_handle(out, partial, index, typestore))
    return results


def _handle(out: Path, partial: Path, index: int, typestore: Typestore) -> RecoveryResult:
    bag = partial / episode_name(index)
    final = out / episode_name(index)
    if final.exists():
        return _move_aside(out, partial, index, f"{final} exists already")
    if (bag / "metadata.yaml").is_file():
        bag.rename(final)
        shutil.rmtree(partial, ignore_errors=True)
        return RecoveryResult(index, "renamed", final, -1, "finished bag, rename was interrupted")
    files = sorted(bag.glob("*.mcap")) if bag.is_dir() else []
    if not files:
        return _move_aside(out, partial, index, "no MCAP file")
    staging = out / f".{episode_name(index)}.recovery"
    try:
        count, note = _rewrite(files[0], staging / episode_name(index), index, typestore)
    except Exception as error:  # noqa: BLE001 - anything unreadable is moved aside, never lost
        shutil.rmtree(staging, ignore_errors=True)
        return _move_aside(out, partial, index, f"unreadable: {error}")
    if count == 0:
        shutil.rmtree(staging, ignore_errors=True)
        return _move_aside(out, partial, index, f"no complete chunk ({note})")
    (staging / episode_name(index)).rename(final)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    return RecoveryResult(index, "recovered", final, count, note)


def recover_copy(folder: Path, target: Path, typestore: Typestore) -> tuple[int, str]:
    """Rewrite the readable part of the bag in ``folder`` as a complete bag ``target`` (``folder`` untouched).

    Returns (messages kept, how reading ended). Raises ``FileNotFoundError`` without an MCAP file.
    """
    files = sorted(Path(folder).glob("*.mcap"))
    if not files:
        raise FileNotFoundError(f"{folder}: no MCAP file")
    index = int(folder.name.split("_")[-1]) if folder.name.split("_")[-1].isdigit() else 0
    return _rewrite(files[0], target, index, typestore)


def _move_aside(out: Path, partial: Path, index: int, why: str) -> RecoveryResult:
    target = out / CRASHED / f"{episode_name(index)}-{int(time.time())}"
    target.parent.mkdir(exist_ok=True)
    partial.rename(target)
    return RecoveryResult(index, "moved_aside", target, 0, why)


def _rewrite(source: Path, target: Path, index: int, typestore: Typestore) -> tuple[int, str]:
    """Copy every complete message of ``source`` into a new bag ``target``; (count, how reading ended)."""
    writer = CrcWriter(target, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    writer.set_custom_data("armpilot.episode", str(index))
    writer.set_custom_data("armpilot.recovered", "true")
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    connections = {}
    count, notes = 0, []
    with open(source, "rb") as handle:
        for record in _complete_records(StreamReader(handle, skip_magic=False, validate_crcs=True).records, notes):
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message) and record.channel_id in channels:
                if record.channel_id not in connections:
                    connections[record.channel_id] = _connection(writer, channels[record.channel_id],
                                                                 schemas, typestore)
                writer.write(connections[record.channel_id], record.log_time, record.data)
                count += 1
    note = notes[0] if notes else "read to the end"
    writer.set_custom_data("armpilot.recovery", note)
    writer.close()
    return count, note


def _complete_records(records: Iterator[Any], notes: list[str]) -> Iterator[Any]:
    """The records up to the first one the reader cannot parse (the truncated tail)."""
    try:
        yield from records
    except Exception as error:  # noqa: BLE001 - whatever the reader raises on a truncated file
        notes.append(f"stopped at a truncated record ({type(error).__name__})")


def _connection(writer: Writer, channel: Channel, schemas: dict[int, Schema], typestore: Typestore):
    schema = schemas[channel.schema_id]
    qos = parse_qos(channel.metadata.get("offered_qos_profiles", "")) if channel.metadata.get(
        "offered_qos_profiles") else []
    return writer.add_connection(channel.topic, schema.name, msgdef=schema.data.decode(),
                                 rihs01=typestore.hash_rihs01(schema.name),
                                 serialization_format=channel.message_encoding, offered_qos_profiles=qos)
