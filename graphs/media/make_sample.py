"""Regenerate ``noisy_speech.ogg``, the bundled sample of ``graphs/noisy_speech_demo.yaml``.

Speech is synthesized once with espeak-ng, white noise is added with numpy (fixed seed, about 10 dB below the
speech), and the result is encoded as 16 kHz mono Opus in Ogg at 24 kbit/s (a few tens of kilobytes)::

    apt-get install -y espeak-ng        # once
    .venv/bin/python graphs/media/make_sample.py [OUTPUT.ogg]   # default: graphs/media/noisy_speech.ogg

The output is deterministic for a given espeak-ng version; the committed file was made with espeak-ng 1.51.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
OUT = HERE / "noisy_speech.ogg"
RATE = 16000
TEXT = (
    "Hello, this is the media graph noisy speech demo. "
    "On the left you hear the microphone, with a steady hiss behind the voice. "
    "On the right you hear what the speaker played after noise suppression."
)
NOISE_DB = -10.0  # white noise level relative to the speech's RMS
SEED = 20260601


def speak(text: str) -> npt.NDArray[np.float64]:
    """``text`` spoken by espeak-ng, as mono float samples at ``RATE``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        with av.open(str(wav)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            frames = [f for decoded in container.decode(audio=0) for f in resampler.resample(decoded)]
            frames += resampler.resample(None)
    pcm = np.concatenate([np.asarray(f.to_ndarray(), np.int16).reshape(-1) for f in frames])
    return pcm.astype(np.float64) / 32768


def add_noise(speech: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    voiced = speech[np.abs(speech) > 0.01]
    level = float(np.sqrt(np.mean(voiced**2))) * 10 ** (NOISE_DB / 20)
    noisy = speech + np.random.default_rng(SEED).normal(0.0, level, len(speech))
    return np.round(np.clip(noisy, -1, 1) * 32767).astype(np.int16)


def encode(samples: npt.NDArray[np.int16], path: Path) -> None:
    with av.open(str(path), "w", format="ogg", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libopus", rate=RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = 24000
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def main(out: Path = OUT) -> None:
    speech = speak(TEXT)
    pad = np.zeros(RATE // 2)  # half a second of noise alone before and after: the suppressor learns it
    encode(add_noise(np.concatenate([pad, speech, pad])), out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB, {(len(speech) + 2 * len(pad)) / RATE:.1f} s)")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:2]))
