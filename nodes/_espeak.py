"""A ctypes binding of espeak-ng, the shared library and data that PyPI's ``espeakng-loader`` ships.

The library is a process-wide, non-reentrant singleton: one set of voice and parameters, one synthesis at a
time. Everything here goes through :data:`ENGINE`, whose lock serializes every call into the library from any
thread of the process, so two speech nodes (in one graph, or in two graphs of one process) never synthesize
concurrently. The library runs in synchronous mode (``AUDIO_OUTPUT_SYNCHRONOUS``): ``espeak_Synth`` returns
when the text is spoken, its callback having been called in the same thread with the samples and events.

Repeatability: espeak-ng keeps state from one synthesis to the next (a pitch-flutter phase in a function's
static variable, filter memories, a random generator), so the same text would come out slightly different
each time. Each synthesis therefore starts from a freshly loaded library (unloaded, loaded again and
initialized: about 2 ms) with its random seed set to 0: the same text, voice, rate and pitch give the same
samples, byte for byte, whatever was spoken before, in any order, in any process.

Threads: :meth:`Engine.synthesize` blocks (tens of milliseconds for a sentence) and is meant for a worker
thread; it runs no node code, only fills and returns a :class:`Synthesis`. No trio here.
"""

from __future__ import annotations

import _ctypes
import ctypes
import difflib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, final

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["ENGINE", "MAX_PITCH", "MAX_RATE", "MIN_PITCH", "MIN_RATE", "Engine", "EspeakError", "Synthesis", "Word"]

#: espeak-ng's speaking rates, words per minute (``espeakRATE_MINIMUM``, ``espeakRATE_MAXIMUM``).
MIN_RATE: Final = 80
MAX_RATE: Final = 450
MIN_PITCH: Final = 0
MAX_PITCH: Final = 100

_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_INITIALIZE_DONT_EXIT: Final = 0x8000  # report a failure instead of exiting the process
_POS_CHARACTER: Final = 1
_CHARS_UTF8: Final = 1
_EVENT_LIST_TERMINATED: Final = 0
_EVENT_WORD: Final = 1
_EVENT_END: Final = 5  # end of a clause or sentence
_EVENT_MSG_TERMINATED: Final = 6
_RATE: Final = 1
_PITCH: Final = 3
_EE_OK: Final = 0


@final
class EspeakError(Exception):
    """The library could not be loaded or initialized, refused a voice or a parameter, or failed to speak."""


@final
class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, from 1
        ("length", ctypes.c_int),  # the word's length in characters
        ("audio_position", ctypes.c_int),  # milliseconds into the synthesized audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    )


@final
class _Voice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@final
@attrs.frozen(kw_only=True)
class Word:
    """A word espeak spoke: ``text[position:position + length]`` of the text given, starting ``ms`` into the
    audio; ``end_ms`` is where the next word or clause boundary begins (``None`` for none: the audio's end)."""

    position: int
    length: int
    ms: int
    end_ms: int | None = None


@final
@attrs.frozen(kw_only=True)
class Synthesis:
    """What one ``espeak_Synth`` call produced: mono int16 samples at ``sample_rate`` and the words, in order;
    ``aborted`` when it was stopped part way (the samples and words are those made until then)."""

    samples: npt.NDArray[np.int16] = attrs.field(eq=False)
    sample_rate: int
    words: tuple[Word, ...]
    aborted: bool = False


@final
class Engine:
    """The espeak-ng library of this process, loaded and initialized on first use.

    Every method takes the process-wide lock for its whole call. ``calls`` counts syntheses; ``spans`` keeps
    the ``(start, end)`` of the latest ones (``time.perf_counter`` seconds, for statistics and tests: they
    never overlap).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = None
        self._handle: int | None = None  # the dlopen handle of the loaded copy
        self._rate = 0
        self._voice: str | None = None
        self._params: dict[int, int] = {}
        self._known_voices: dict[str, bool] = {}
        self._listing: tuple[set[str], set[str]] | None = None
        self.calls = 0
        self.spans: deque[tuple[float, float]] = deque(maxlen=256)
        # set during a synthesis: the callback's target (a C callback must stay referenced while installed)
        self._sink: Callable[[npt.NDArray[np.int16], list[_Event]], bool] | None = None
        self._callback = _Callback(self._on_synth)

    def __repr__(self) -> str:
        state = "not loaded" if self._lib is None else f"{self._rate} Hz, voice {self._voice!r}"
        return f"<espeak-ng {state}, {self.calls} syntheses>"

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:  # a short *, an espeak_EVENT *
        sink = self._sink
        if sink is None:
            return 1
        samples = np.ctypeslib.as_array(wav, (count,)).copy() if count > 0 and wav else np.zeros(0, np.int16)
        found: list[_Event] = []
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            found.append(_Event.from_buffer_copy(events[i]))
            if events[i].type == _EVENT_MSG_TERMINATED:
                break
            i += 1
        return 1 if sink(samples.astype(np.int16, copy=False), found) else 0

    def _load(self) -> ctypes.CDLL:
        if self._lib is not None:
            return self._lib
        try:
            import espeakng_loader  # type: ignore[import-untyped]  # no py.typed marker

            path = espeakng_loader.get_library_path()
            data = espeakng_loader.get_data_path()
            self._handle = _open_library(path)
        except (ImportError, OSError, RuntimeError) as exc:
            raise EspeakError(f"cannot load espeak-ng from espeakng-loader: {exc}") from exc
        lib = ctypes.CDLL(path, handle=self._handle)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data folder {data!r})")
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_ng_SetRandSeed(0)
        self._lib, self._rate = lib, rate
        return lib

    def _reload(self) -> ctypes.CDLL:
        """The library as if this process had never used it (see the module's docstring)."""
        if self._lib is not None and self._handle is not None:
            self._lib.espeak_Terminate()
            _close_library(self._handle)
            self._lib = self._handle = None
            self._voice = None
            self._params.clear()
        return self._load()

    @property
    def sample_rate(self) -> int:
        """The rate the library speaks at (22050 Hz for espeak-ng's voices).

        Raises:
            EspeakError: the library cannot be loaded.
        """
        with self._lock:
            self._load()
            return self._rate

    def voices(self) -> list[str]:
        """The names of the installed voices and their languages (``en-gb``), which select them too.

        Raises:
            EspeakError: the library cannot be loaded.
        """
        with self._lock:
            names, languages = self._list()
            return sorted(names | languages)

    def _list(self) -> tuple[set[str], set[str]]:
        """The voices' names, and their languages (lower case); read once (the data folder does not change)."""
        if self._listing is not None:
            return self._listing
        listing = self._load().espeak_ListVoices(None)
        names: set[str] = set()
        languages: set[str] = set()
        i = 0
        while listing[i]:
            voice = listing[i].contents
            if voice.name:
                names.add(voice.name.decode(errors="replace"))
            if voice.languages and len(voice.languages) > 1:  # a priority byte, then the first language
                languages.add(voice.languages[1:].decode(errors="replace").lower())
            i += 1
        self._listing = names, languages
        return self._listing

    def check_voice(self, voice: str) -> None:
        """Raise unless espeak-ng has ``voice`` (a name such as ``en-us``, or ``en-us+f3`` with a variant).

        Raises:
            EspeakError: no such voice (the message names the closest), or the library cannot be loaded.
        """
        with self._lock:
            known = self._known_voices.get(voice)
            if known is None:
                known = self._select(voice)
                self._known_voices[voice] = known
        if not known:
            close = difflib.get_close_matches(voice, self.voices(), n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else " (see espeak-ng's voice list)"
            raise EspeakError(f"espeak-ng has no voice {voice!r}{hint}")

    def _select(self, voice: str) -> bool:
        """Select ``voice`` by name (a voice file, ``en-us+f3``), else by language (``en-gb``)."""
        if voice == self._voice:
            return True
        lib = self._load()
        self._voice = None  # a failed selection may leave the previous voice half changed
        self._params.clear()  # a new voice resets rate and pitch
        if "\x00" in voice:
            return False
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            if "+" in voice or voice.lower() not in self._list()[1]:
                return False
            wanted = _Voice(languages=voice.lower().encode())
            if lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != _EE_OK:
                return False
        self._voice = voice
        return True

    def _set(self, parameter: int, value: int) -> None:
        if self._params.get(parameter) == value:
            return
        assert self._lib is not None
        if self._lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
            raise EspeakError(f"espeak-ng refused parameter {parameter} = {value}")
        self._params[parameter] = value

    def synthesize(
        self, text: str, *, voice: str, rate: int, pitch: int, abort: threading.Event | None = None
    ) -> Synthesis:
        """Speak ``text`` with ``voice`` at ``rate`` words per minute and ``pitch`` (0 to 100); blocks.

        Args:
            abort: when set (from any thread), the synthesis stops at the next block of samples.

        Raises:
            EspeakError: unknown voice, a refused parameter, or the library failed.
        """
        with self._lock:
            started = time.perf_counter()
            lib = self._reload()
            if not self._select(voice):
                raise EspeakError(f"espeak-ng has no voice {voice!r}")
            self._set(_RATE, rate)
            self._set(_PITCH, pitch)
            chunks: list[npt.NDArray[np.int16]] = []
            events: list[_Event] = []
            stopped = False

            def sink(samples: npt.NDArray[np.int16], found: list[_Event]) -> bool:
                nonlocal stopped
                chunks.append(samples)
                events.extend(found)
                stopped = abort is not None and abort.is_set()
                return stopped

            self._sink = sink
            data = text.replace("\x00", " ").encode()
            try:
                status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            finally:
                self._sink = None
                self.calls += 1
                self.spans.append((started, time.perf_counter()))
            if status != _EE_OK and not stopped:
                raise EspeakError(f"espeak_Synth failed with status {status}")
            samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
            return Synthesis(samples=samples, sample_rate=self._rate, words=_words(events), aborted=stopped)


def _open_library(path: str) -> int:
    """A new ``dlopen`` handle of the library (``LoadLibrary`` on Windows)."""
    opener = getattr(_ctypes, "dlopen", None)
    if opener is not None:
        return int(opener(path, ctypes.RTLD_LOCAL))
    return int(_ctypes.LoadLibrary(path))  # type: ignore[attr-defined, unused-ignore]


def _close_library(handle: int) -> None:
    closer = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")  # noqa: B009
    closer(handle)


def _words(events: list[_Event]) -> tuple[Word, ...]:
    """The word events, each ended by the next word or clause boundary that follows it."""
    marks = [e for e in events if e.type in (_EVENT_WORD, _EVENT_END)]
    words: list[Word] = []
    for i, e in enumerate(marks):
        if e.type != _EVENT_WORD:
            continue
        end = next((m.audio_position for m in marks[i + 1 :] if m.audio_position > e.audio_position), None)
        words.append(Word(position=max(0, e.text_position - 1), length=e.length, ms=e.audio_position, end_ms=end))
    return tuple(words)


#: The library of this process.
ENGINE: Final = Engine()
