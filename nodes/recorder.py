"""``recorder``: what was heard and what was played, as one stereo file (left: user, right: agent).

Theory of operation. The pure core, :class:`~._conversation.Conversation`, places audio on a 48 kHz stereo
timeline and says how much of it is final (its module states the rules: placement, segments, trimming, and
how agent audio waits until the sink reports it played); :class:`~._writers.Recording` writes it under an
in-progress name, readable at any moment, and gives it its name once finalized. The actor here only drains
its inlets in batches into the core and writes what the core releases, at least every ``COMMIT_SAMPLES``.

What a killed process loses: audio is written once final and played (with a sink that reports
``PlaybackProgress``, about ``progress_ms`` behind playback), in pieces of 100 ms, and reaches the disk at
once (WAV), within 250 ms (Ogg pages, MP4 fragments), so about the last second at most (plus
``max_lag`` while a side is quiet).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Final, final

import attrs
import trio

import mediagraph as mg

from ._agent_gate import PlaybackMessage
from ._conversation import RATE, Conversation
from ._subtitles import HEADER, Subtitles
from ._writers import FORMATS, Format, Recording, SubtitleFile, subtitles_path

__all__ = ["COMMIT_SAMPLES", "Conversation", "ConversationRecorder", "RecorderConfig"]

_v = attrs.validators

#: What the ``playback`` inlet takes: a sink's playback events.
PLAYBACK_TYPES: Final = typing.get_args(PlaybackMessage)
#: Audio is written in pieces of at least this many samples (100 ms), or at the end.
COMMIT_SAMPLES: Final = RATE // 10


def _check_path(_: object, attribute: attrs.Attribute[Any], path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        known = ", ".join(FORMATS)
        raise ValueError(f"recorder path {str(path)!r}: unsupported extension {path.suffix!r} (known: {known})")


@final
@attrs.frozen(kw_only=True)
class RecorderConfig:
    """Args:
    path: the file to write; its extension picks the format: ``.ogg``/``.opus`` (Opus in Ogg, the default
        format), ``.wav`` (16-bit PCM), ``.mp4`` (fragmented MP4: AAC, plus H.264 when ``video`` is linked).
        Missing parent folders are created. It is written as ``PATH.part`` and renamed to ``PATH`` once
        finalized: an existing file there is replaced then (a symbolic link there is refused at start). A
        ``PATH.part`` left by a killed run is replaced when the next run starts: move it away to keep it.
    max_lag: seconds of media a quiet side is waited for behind the other before its silence is written.
    max_hold: seconds of agent audio held for a playback event that settles it before it is written
        untrimmed.
    """

    path: Path = attrs.field(
        default=Path("recording.ogg"), converter=Path, validator=_check_path, metadata={"path": "output"}
    )
    max_lag: float = attrs.field(default=1.0, validator=[_v.ge(0), _v.le(3600)])
    max_hold: float = attrs.field(default=30.0, validator=[_v.gt(0), _v.le(3600)])

    @property
    def format(self) -> Format:
        return FORMATS[self.path.suffix.lower()]


# --- the node ---------------------------------------------------------------------------------------------


@final
@mg.node_type("recorder", config=RecorderConfig, examples={"path: call.mp4": {"path": "call.mp4"}})
class ConversationRecorder(mg.Actor):
    """Records what was heard (``user``) and played (``agent``) as one stereo 48 kHz file, optional video.

    Inlets (each optional, at least one of ``user`` and ``agent`` linked): ``user`` and ``agent``
    (``AudioFrame``, any rate and channels), ``playback`` (feedback: the sink's ``PlaybackStarted``,
    ``PlaybackProgress`` and ``PlaybackFinished``, used to write agent audio once played and to trim
    interrupted agent audio to what was played), ``transcript`` (``Transcript``: what the listener heard of
    each segment, written as WebVTT subtitles beside the recording, ``call.ogg`` -> ``call.vtt``, cue times on
    the recording's timeline, an interrupted cue ending at the cut), and, for ``.mp4`` paths only, ``video``
    (``VideoFrame``, numpy ``rgb24`` or ``av.VideoFrame`` pictures). :mod:`._conversation` defines
    placement, segments and trimming exactly, :mod:`._subtitles` the cues. Logs ``recording_started`` (the
    final path and the in-progress one, and the subtitles' when ``transcript`` is linked), then either
    ``recording_finished`` (the files are complete under their names; statistics, with ``cues`` and
    ``untimed_cues`` for subtitles) or ``recording_failed`` (the reason, and where what was written is; the
    subtitles stay in progress with it). Subtitles that fail while the recording completes are logged apart,
    after ``recording_finished``: ``subtitles_failed`` (the reason, and where their cues are).

    Raises:
        mg.ProviderError: the file cannot be created (the message says why: a folder on the way is a file,
            no permission, a symbolic link at the path) or written.

    Resource handling: the file (and the subtitles, written the same way) is created when the node starts and
    finalized in :meth:`cleanup`, which the runtime runs shielded however the graph ends (stopped, cancelled,
    another node failed), so the file is always complete under its name. Until then it is written under its
    in-progress name, readable at any moment: a killed process loses about the last second (plus ``max_lag``
    while a side is quiet, and held agent audio waiting for its playback event when the sink reports no
    progress); the subtitles' in-progress file holds every cue received.

    Cancellation: reading the inlets is cancelled with the node; what was received is still written by
    :meth:`cleanup`.
    """

    @staticmethod
    def ports(config: RecorderConfig) -> mg.Ports:
        inlets = [
            mg.InletSpec(name="user", required=False),
            mg.InletSpec(name="agent", required=False),
            mg.InletSpec(name="playback", types=PLAYBACK_TYPES, feedback=True, required=False),
            mg.InletSpec(name="transcript", types=mg.Transcript, required=False),
        ]
        if config.format.video:
            inlets.append(mg.InletSpec(name="video", types=mg.VideoFrame, required=False))
        return mg.Ports(inlets=inlets, one_of=[("user", "agent")])

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self._core: Conversation | None = None
        self._writer: Recording | None = None
        self._subtitles: Subtitles | None = None
        self._vtt: SubtitleFile | None = None
        self._io: mg.NodeIO | None = None

    def __repr__(self) -> str:
        return f"<ConversationRecorder {str(self.config.path)!r} {self._core!r}>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        linked = {name for name, inlet in io.inlets.items() if inlet.mailbox is not None}
        sides = linked & {"user", "agent"}  # at least one: the graph does not validate otherwise
        cfg = self.config
        self._core = Conversation(
            sides=sides, playback="playback" in linked, max_lag=cfg.max_lag, max_hold=cfg.max_hold
        )
        subtitles = {}
        if "transcript" in linked:
            self._subtitles = Subtitles()
            self._vtt = SubtitleFile(subtitles_path(cfg.path), HEADER)
            subtitles = {"subtitles": str(self._vtt.path), "subtitles_part": str(self._vtt.part)}
        try:
            self._writer = Recording(cfg.path, video="video" in linked)
        except mg.ProviderError:
            if self._vtt is not None:  # nothing was recorded: no subtitles of it are left either
                self._vtt.abandon()
                self._vtt.part.unlink(missing_ok=True)
                self._vtt = None
            raise
        io.log("recording_started", path=str(cfg.path), part=str(self._writer.part), **subtitles)
        async with trio.open_nursery() as nursery:
            for name in sorted(linked):
                nursery.start_soon(self._drain, io.inlets[name])

    async def _drain(self, inlet: mg.Inlet) -> None:
        core, writer = self._core, self._writer
        assert core is not None and writer is not None
        handle = {
            "user": core.user,
            "agent": core.agent if self._subtitles is None else self._agent,
            "playback": core.playback,
            "video": self._video,
            "transcript": self._transcript,
        }
        receive = handle[inlet.name]
        while True:
            try:
                batch = await inlet.receive_batch()
            except trio.EndOfChannel:
                break
            for msg in batch:
                receive(msg)
            self._commit(COMMIT_SAMPLES)
        if inlet.name == "video":
            writer.waiting_for_video = False
        elif inlet.name != "transcript":
            core.end(inlet.name)
        if inlet.name == "agent" and self._subtitles is not None:
            self._subtitles.end_agent()
        self._commit(1)

    def _agent(self, msg: object) -> None:
        assert self._core is not None and self._subtitles is not None
        self._core.agent(msg)
        self._subtitles.agent(msg)

    def _transcript(self, msg: object) -> None:
        assert self._subtitles is not None and self._vtt is not None
        self._vtt.append(self._subtitles.transcript(msg))

    def _video(self, msg: object) -> None:
        if isinstance(msg, mg.VideoFrame):
            assert self._writer is not None
            self._writer.write_video(msg)

    def _commit(self, minimum: int) -> None:
        assert self._core is not None and self._writer is not None
        if self._writer.waiting_for_video:
            return
        samples = self._core.take(minimum)
        if samples is not None:
            self._writer.write_audio(samples)

    async def cleanup(self) -> None:
        """Write what is left and finalize the files (shielded and time-bounded by the runtime).

        Raises:
            mg.ProviderError: finishing a file failed (a write failure was raised by ``run`` already).
        """
        writer, self._writer = self._writer, None
        if writer is None:
            return  # never created: nothing to finish, nothing to report
        if writer.failed is None:
            try:
                if self._core is not None:
                    rest = self._core.finish()
                    if len(rest):
                        writer.write_audio(rest)
                writer.finalize()
            except mg.ProviderError:
                writer.abandon()
                self._drop_subtitles()
                self._log_failed(writer)
                raise
        else:
            writer.abandon()
        if writer.failed is not None:
            self._drop_subtitles()
            self._log_failed(writer)
            return
        stats: dict[str, object] = {**self._core.statistics()} if self._core is not None else {}
        vtt, self._vtt = self._vtt, None
        raised: mg.ProviderError | None = None
        if vtt is not None and self._subtitles is not None:
            if vtt.failed is not None:  # raised by ``run`` already
                vtt.abandon()
            else:
                try:
                    vtt.finalize(None if self._subtitles.in_order else self._subtitles.document())
                except mg.ProviderError as exc:
                    raised = exc
            if vtt.failed is None:
                stats |= {"subtitles": str(vtt.path), **self._subtitles.statistics()}
        if self._io is not None:  # the recording itself is complete under its name, whatever the subtitles did
            self._io.log("recording_finished", path=str(self.config.path), pictures=writer.pictures, **stats)
        if vtt is not None and vtt.failed is not None:
            self._log_failed(vtt, "subtitles_failed")
        if raised is not None:
            raise raised

    def _drop_subtitles(self) -> None:
        """The recording failed: its subtitles stay as they are, under their in-progress name."""
        vtt, self._vtt = self._vtt, None
        if vtt is not None:
            vtt.abandon()

    def _log_failed(self, writer: Recording | SubtitleFile, event: str = "recording_failed") -> None:
        if self._io is not None:
            self._io.log(event, path=str(writer.path), part=str(writer.part), reason=writer.failed)
