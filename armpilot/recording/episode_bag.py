"""One rosbag2 bag (MCAP storage) per episode, finalised atomically (pure, no rclpy).

Layout under the output folder ``OUT``::

    OUT/episode_000006/                      finished: metadata.yaml + episode_000006.mcap
    OUT/.episode_000007.partial/episode_000007/   being written (no metadata.yaml yet)
    OUT/.crashed/                            leftovers that could not be recovered

An episode is written into ``OUT/.episode_N.partial/episode_N/`` with
``rosbags.rosbag2.Writer`` (format version 9, MCAP storage). ``stop()`` closes
the writer (MCAP summary + ``metadata.yaml``, as ``ros2 bag info`` expects),
fsyncs, and renames the inner folder to ``OUT/episode_N`` in one atomic
``rename``; ``discard()`` deletes the partial folder. A bag is therefore either
complete under its final name or absent. Leftover partial folders of a crashed
recorder are handled when the recorder opens (``armpilot.recording.recovery``).

Messages are raw CDR bytes (rclpy ``raw=True`` subscriptions), stored as
received. MCAP chunks are closed at 1 MiB (rosbags) or ``chunk_interval_s``,
whichever comes first, so a killed recorder loses at most about that much.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from armpilot.recording.config import TopicSpec
from armpilot.recording.mcap_crc import CrcWriter

BAG_VERSION = 9
EPISODE_RE = re.compile(r"^\.?episode_(\d{6})(?:\.partial|\.recovery)?$")


def episode_name(index: int) -> str:
    """``episode_000007`` for index 7."""
    return f"episode_{index:06d}"


def partial_dir(out: Path, index: int) -> Path:
    """The folder an episode is written in until it is finished."""
    return out / f".{episode_name(index)}.partial"


def next_index(out: Path) -> int:
    """One past the highest episode number in ``out`` (finished, partial or moved aside)."""
    found = [-1]
    for folder in (out, out / ".crashed"):
        if folder.is_dir():
            for entry in folder.iterdir():
                match = EPISODE_RE.match(entry.name.split("-")[0])
                if match:
                    found.append(int(match.group(1)))
    return max(found) + 1


def default_typestore() -> Typestore:
    """The rosbags message definitions the bags' schemas come from (Kilted)."""
    return get_typestore(Stores.ROS2_KILTED)


def read_cdr(typestore: Typestore, raw: bytes | memoryview, msgtype: str) -> Any:
    """Deserialise one recorded CDR message.

    Fast DDS aligns the (empty) float64 sequences at the end of e.g. a JointState
    without velocities, leaving up to 8 trailing bytes that
    ``Typestore.deserialize_cdr`` rejects ("size mismatch"); this reads the same
    message and ignores trailing padding.
    """
    data = bytes(raw)
    if len(data) < 4 or data[:2] not in (b"\x00\x00", b"\x00\x01"):
        raise ValueError(f"not a CDR message of {msgtype} (encapsulation {data[:4].hex()})")
    msgdef = typestore.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
    message, _ = func(data[4:], 0, msgdef.cls, typestore)
    return message


class RecordingError(RuntimeError):
    """Recording failed; the message names the episode and the path."""

    def __init__(self, message: str, episode: int | None = None, path: Path | None = None) -> None:
        super().__init__(message)
        self.episode, self.path = episode, path


@dataclass
class RecordingStats:
    """What the current (or last) episode holds, for the progress display."""

    episode: int | None = None
    path: Path | None = None
    recording: bool = False
    messages: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    duration_s: float = 0.0
    finished_episodes: int = 0

    def total_messages(self) -> int:
        return sum(self.messages.values())

    def line(self) -> str:
        """One progress line: episode, duration, messages per topic, bytes, dropped."""
        state = "recording" if self.recording else "idle"
        label = "-" if self.episode is None else episode_name(self.episode)
        per_topic = ", ".join(f"{t}={n}" for t, n in self.messages.items() if n) or "no messages"
        return (f"{state} {label} ({self.finished_episodes} finished): {self.duration_s:.1f} s, "
                f"{self.total_messages()} msgs, {self.bytes / 1e6:.1f} MB, dropped {sum(self.dropped.values())}; "
                f"{per_topic}")


def describe_os_error(error: OSError) -> str:
    """``disk full (ENOSPC)`` and the like, for error messages."""
    if error.errno == errno.ENOSPC:
        return "disk full (ENOSPC)"
    name = errno.errorcode.get(error.errno or 0, "?")
    return f"{error.strerror or error} ({name})"


class _BagWriter:
    """A rosbags MCAP writer with per-topic connections and time-bounded chunks."""

    def __init__(self, path: Path, topics: Sequence[TopicSpec], typestore: Typestore,
                 chunk_interval_s: float, clock: Callable[[], float], custom: dict[str, str]) -> None:
        self.writer = CrcWriter(path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        for key, value in custom.items():
            self.writer.set_custom_data(key, value)
        self.connections = {t.name: self.writer.add_connection(t.name, t.msgtype, typestore=typestore,
                                                               offered_qos_profiles=[t.offered_qos])
                            for t in topics}
        self.chunk_interval_s, self.clock = chunk_interval_s, clock
        self.chunk_opened = clock()

    def write(self, topic: str, data: bytes | memoryview, timestamp_ns: int) -> None:
        self.writer.write(self.connections[topic], timestamp_ns, data)
        if self.clock() - self.chunk_opened >= self.chunk_interval_s:
            self.close_chunk()

    def close_chunk(self) -> None:
        storage = self.writer.storage
        if storage is not None and storage.chunk.bio.tell():  # type: ignore[attr-defined]
            storage.close_chunk()  # type: ignore[attr-defined]
            storage.bio.flush()  # type: ignore[attr-defined]
        self.chunk_opened = self.clock()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Close the file without index or metadata (after a write error)."""
        storage = self.writer.storage
        self.writer.storage = None
        if storage is not None:
            try:
                storage.bio.close()  # type: ignore[attr-defined]
            except OSError:
                pass


class EpisodeRecorder:
    """Writes numbered episodes into ``out``; recovers a crashed recorder's leftovers on open.

    Args:
        out: output folder (created if missing).
        topics: the recorded topics; each gets a connection in every episode.
        typestore: where message definitions come from (default: rosbags' Kilted store).
        chunk_interval_s: MCAP chunks are closed at least this often, s.
        clock: monotonic seconds (for durations and chunk timing).

    Raises:
        RecordingError: the output folder cannot be created, or a topic's type is unknown.
    """

    def __init__(self, out: str | Path, topics: Sequence[TopicSpec], typestore: Typestore | None = None,
                 chunk_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 custom: dict[str, str] | None = None) -> None:
        from armpilot.recording.recovery import recover_leftovers

        self.out = Path(out).expanduser().absolute()
        self.topics = tuple(topics)
        self.typestore = typestore or default_typestore()
        unknown = [t.msgtype for t in self.topics if t.msgtype not in self.typestore.fielddefs]
        if unknown:
            raise RecordingError(f"message types {unknown} are unknown to the rosbags typestore")
        self.chunk_interval_s, self.clock = chunk_interval_s, clock
        self.custom = dict(custom or {})  # written into every episode's metadata (robot identity)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RecordingError(f"cannot create the output folder {self.out}: {describe_os_error(error)}",
                                 path=self.out) from error
        self.recovered = recover_leftovers(self.out, self.typestore)
        self.stats = RecordingStats()
        self._writer: _BagWriter | None = None
        self._started = 0.0

    @property
    def recording(self) -> bool:
        return self._writer is not None

    def start(self) -> Path:
        """Open the next episode; returns its partial folder.

        Raises:
            RecordingError: already recording, or the folder is not writable (naming episode and path).
        """
        if self._writer is not None:
            raise RecordingError(f"already recording {episode_name(self.stats.episode or 0)} "
                                 f"into {self.stats.path}", self.stats.episode, self.stats.path)
        index = next_index(self.out)
        partial = partial_dir(self.out, index)
        try:
            partial.mkdir()
            self._writer = _BagWriter(partial / episode_name(index), self.topics, self.typestore,
                                      self.chunk_interval_s, self.clock,
                                      {**self.custom, "armpilot.episode": str(index)})
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise RecordingError(f"cannot start {episode_name(index)} in {partial}: {describe_os_error(error)}",
                                 index, partial) from error
        self.stats = RecordingStats(episode=index, path=partial, recording=True,
                                    messages={t.name: 0 for t in self.topics},
                                    dropped={t.name: 0 for t in self.topics},
                                    finished_episodes=self.stats.finished_episodes)
        self._started = self.clock()
        return partial

    def write(self, topic: str, data: bytes | memoryview, timestamp_ns: int) -> bool:
        """Append one message; False (not written) when no episode is open.

        Raises:
            RecordingError: a write error such as a full disk; the episode is stopped, its
                partial folder kept (recovered on the next open, or ``discard()`` it).
        """
        if self._writer is None:
            return False
        try:
            self._writer.write(topic, data, timestamp_ns)
        except OSError as error:
            self._fail(error, "writing")
        self.stats.messages[topic] += 1
        self.stats.bytes += len(data)
        self.stats.duration_s = self.clock() - self._started
        return True

    def note_dropped(self, topic: str, count: int = 1) -> None:
        """Count messages known lost on ``topic`` (e.g. DDS message-lost events)."""
        if self.stats.recording:
            self.stats.dropped[topic] = self.stats.dropped.get(topic, 0) + count

    def flush(self) -> None:
        """Close the open chunk so it is on disk (call periodically)."""
        if self._writer is not None:
            try:
                self._writer.close_chunk()
            except OSError as error:
                self._fail(error, "flushing")

    def stop(self) -> Path:
        """Finish the episode: write metadata, fsync, rename to ``OUT/episode_N``; returns that path.

        Raises:
            RecordingError: not recording, or the bag could not be finished (disk full, ...).
        """
        writer, index, partial = self._require_open("stop")
        try:
            writer.close()
            bag = partial / episode_name(index)
            for file in bag.iterdir():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        except OSError as error:
            self._fail(error, "finishing")
        final = self.out / episode_name(index)
        os.rename(bag, final)
        shutil.rmtree(partial, ignore_errors=True)
        self._fsync_dir(self.out)
        self._close_stats(final)
        self.stats.finished_episodes += 1
        return final

    def discard(self) -> Path:
        """Drop the open (or failed) episode and delete its partial folder; returns that folder."""
        if self._writer is not None:
            writer, _, partial = self._require_open("discard")
            writer.abort()
        elif self.stats.path is not None and self.stats.path.name.endswith(".partial"):
            partial = self.stats.path  # an episode stopped by a write error
        else:
            raise RecordingError("no episode to discard (not recording)")
        shutil.rmtree(partial, ignore_errors=True)
        self._close_stats(None)
        return partial

    def close(self) -> Path | None:
        """Finish the open episode, if any (shutdown); returns its final path."""
        return self.stop() if self._writer is not None else None

    def _require_open(self, action: str) -> tuple[_BagWriter, int, Path]:
        if self._writer is None or self.stats.episode is None or self.stats.path is None:
            raise RecordingError(f"cannot {action}: not recording")
        return self._writer, self.stats.episode, self.stats.path

    def _close_stats(self, path: Path | None) -> None:
        self._writer = None
        self.stats.recording = False
        self.stats.path = path
        self.stats.duration_s = self.clock() - self._started

    def intact_episodes(self) -> int:
        """Finished episodes in ``out`` (this session's and earlier ones): folders with ``metadata.yaml``."""
        return sum(1 for folder in self.out.glob("episode_*") if (folder / "metadata.yaml").is_file())

    def _fail(self, error: OSError, doing: str) -> None:
        writer, index, partial = self._require_open(doing)
        writer.abort()
        self._close_stats(partial)
        raise RecordingError(
            f"{episode_name(index)} stopped: {describe_os_error(error)} while {doing} in {partial}; "
            f"{self.intact_episodes()} earlier episode(s) in {self.out} are intact; the partial "
            "data is kept and recovered when the recorder next opens (or discard it)", index, partial) from error

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
