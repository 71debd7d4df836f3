from fractions import Fraction

import attrs
import numpy as np
import pytest

import mediagraph as mg


def stereo(n: int = 480) -> np.ndarray:
    return np.arange(2 * n, dtype=np.int16).reshape(n, 2)


def test_audio_frame_is_frozen_and_validated() -> None:
    f = mg.AudioFrame(samples=stereo(), sample_rate=48000, channels=2, timestamp=960)
    assert f.samples_per_channel == 480
    assert f.duration == pytest.approx(0.01)
    assert f.format == mg.AudioFormat(sample_rate=48000, channels=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        f.timestamp = 0  # type: ignore[misc]
    with pytest.raises(ValueError, match="int16"):
        mg.AudioFrame(samples=np.zeros((480, 1), np.float32), sample_rate=48000, channels=1)
    with pytest.raises(ValueError, match="2 channels but samples have shape"):
        mg.AudioFrame(samples=np.zeros((480, 1), np.int16), sample_rate=48000, channels=2)
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        mg.AudioFrame(samples=np.zeros((480, 1), np.int16), sample_rate=0, channels=1)


def test_av_round_trip_and_zero_copy_from_av() -> None:
    f = mg.AudioFrame(samples=stereo(), sample_rate=48000, channels=2, timestamp=4800)
    av_frame = f.to_av()
    assert (av_frame.samples, av_frame.sample_rate, av_frame.layout.name, av_frame.pts) == (480, 48000, "stereo", 4800)
    assert av_frame.time_base == Fraction(1, 48000)
    back = mg.AudioFrame.from_av(av_frame)
    np.testing.assert_array_equal(back.samples, f.samples)
    assert back.timestamp == 4800
    # from_av is a view of the PyAV buffer: a change to the plane shows through.
    av_frame.planes[0].update(np.full(960, 7, np.int16).tobytes())
    assert (back.samples == 7).all()


def test_from_av_refuses_planar_float() -> None:
    import av

    frame = av.AudioFrame.from_ndarray(np.zeros((1, 480), np.float32), format="fltp", layout="mono")
    with pytest.raises(ValueError, match="packed s16"):
        mg.AudioFrame.from_av(frame)


def test_rtc_round_trip_without_copies() -> None:
    samples = stereo()
    f = mg.AudioFrame(samples=samples, sample_rate=48000, channels=2, timestamp=12)
    rtc_frame = f.to_rtc()
    assert (rtc_frame.sample_rate, rtc_frame.num_channels, rtc_frame.samples_per_channel) == (48000, 2, 480)
    assert np.shares_memory(np.frombuffer(rtc_frame.data, np.int16), samples)
    back = mg.AudioFrame.from_rtc(rtc_frame, timestamp=12)
    assert np.shares_memory(back.samples, samples)
    np.testing.assert_array_equal(back.samples, samples)
    assert back.timestamp == 12


def test_a_read_only_frame_goes_to_rtc_as_a_copy_livekit_can_address() -> None:
    samples = stereo()
    samples.flags.writeable = False  # as a source's frames are
    rtc_frame = mg.AudioFrame(samples=samples, sample_rate=48000, channels=2, timestamp=0).to_rtc()
    np.testing.assert_array_equal(np.frombuffer(rtc_frame.data, np.int16).reshape(-1, 2), samples)
    assert isinstance(rtc_frame._proto_info().data_ptr, int)  # livekit's FFI takes its address (it raised)


def test_video_rtc_round_trip_without_copies_and_with_one_conversion_from_i420() -> None:
    import av
    from livekit import rtc

    pixels = np.arange(48 * 64 * 3, dtype=np.uint32).astype(np.uint8).reshape(48, 64, 3)
    picture = mg.VideoFrame(pixels=pixels, pts=40_000, time_base=Fraction(1, 1_000_000))
    rtc_frame = picture.to_rtc()
    assert (rtc_frame.width, rtc_frame.height, rtc_frame.type) == (64, 48, rtc.VideoBufferType.RGB24)
    assert np.shares_memory(np.frombuffer(rtc_frame.data, np.uint8), pixels)
    back = mg.VideoFrame.from_rtc(rtc_frame, pts=7)
    assert np.shares_memory(back.pixels, pixels) and back.time == pytest.approx(7e-6)
    np.testing.assert_array_equal(back.pixels, pixels)
    grey = np.full((48, 64, 3), 128, np.uint8)
    i420 = mg.VideoFrame(pixels=grey, pts=0, time_base=1).to_rtc().convert(rtc.VideoBufferType.I420)
    assert np.abs(mg.VideoFrame.from_rtc(i420, pts=0).pixels.astype(int) - 128).max() <= 2  # what a track delivers
    grey.flags.writeable = False  # a pattern's pictures are read-only: copied once, addressable by the FFI
    assert isinstance(mg.VideoFrame(pixels=grey, pts=0, time_base=1).to_rtc()._proto_info().data_ptr, int)
    from_av = mg.VideoFrame(pixels=av.VideoFrame.from_ndarray(pixels, format="rgb24"), pts=0, time_base=1)
    np.testing.assert_array_equal(np.frombuffer(from_av.to_rtc().data, np.uint8).reshape(48, 64, 3), pixels)
    with pytest.raises(ValueError, match=r"uint8 \(height, width, 3 or 4\), got int16"):
        mg.VideoFrame(pixels=np.zeros((4, 4, 3), np.int16), pts=0, time_base=1).to_rtc()


def test_format_constraints() -> None:
    any_format = mg.AudioFormat()
    mono48 = mg.AudioFormat(sample_rate=48000, channels=1)
    assert any_format.accepts(mono48) and mono48.accepts(any_format)
    assert not mono48.accepts(mg.AudioFormat(sample_rate=16000))
    assert str(mono48) == "48000 Hz, 1 ch"
    with pytest.raises(ValueError, match="channels must be positive"):
        mg.AudioFormat(channels=0)


def test_other_messages() -> None:
    v = mg.VideoFrame(pixels=np.zeros((2, 2, 3), np.uint8), pts=3, time_base=Fraction(1, 30))
    assert v.time == pytest.approx(0.1)
    assert mg.TextChunk(text="hi").final is False
    assert isinstance(mg.Flush(), mg.Control) and isinstance(mg.Interrupt(), mg.Control)
    assert isinstance(mg.EndOfStream(), mg.Control)
