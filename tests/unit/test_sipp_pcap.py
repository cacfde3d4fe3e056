"""The RTP pcaps SIPp callers play: keys (RFC 4733 events) and what the caller says (G.711
µ-law) in one stream whose sequence numbers and timestamps only rise, so Asterisk takes every
key and every frame."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from callcenter.testing.sipp import Audio, dtmf_xml, write_rtp_pcap


def packets(path: Path) -> list[tuple[int, bytes]]:
    """(milliseconds, RTP bytes) of each packet of a pcap written by write_rtp_pcap."""
    data, out, at = path.read_bytes(), [], 24
    while at < len(data):
        seconds, micros, length, _ = struct.unpack_from("<IIII", data, at)
        frame = data[at + 16 : at + 16 + length]
        out.append((seconds * 1000 + micros // 1000, frame[14 + 20 + 8 :]))
        at += 16 + length
    return out


def test_keys_and_speech_share_one_rising_stream(tmp_path: Path) -> None:
    path = tmp_path / "call.pcap"
    length = write_rtp_pcap(path, ["2", Audio.tone(100), "w#"])
    sent = packets(path)
    headers = [struct.unpack_from(">BBHII", rtp) for _, rtp in sent]
    assert {ssrc for *_, ssrc in headers} == {0x1415_0000}
    sequences = [seq for _, _, seq, _, _ in headers]
    assert sequences == sorted(sequences)  # the end of a key is sent three times with one number
    stamps = [ts for *_, ts, _ in headers]
    assert stamps == sorted(stamps)
    kinds = [pt & 0x7F for _, pt, *_ in headers]
    assert kinds.count(0) == 5  # 100 ms of speech: five 20 ms PCMU packets
    speech = [(ms, rtp) for (ms, rtp), kind in zip(sent, kinds, strict=True) if kind == 0]
    assert [ms for ms, _ in speech] == [460, 480, 500, 520, 540]  # after the key and its gap
    assert speech[0][1][1] & 0x80 and not speech[1][1][1] & 0x80  # a talkspurt starts marked
    assert all(len(rtp) == 12 + 160 for _, rtp in speech)
    assert length == 460 + 100 + 500 + 460


def test_silence_is_ulaw_silence_and_a_tone_is_loud(tmp_path: Path) -> None:
    path = tmp_path / "quiet.pcap"
    write_rtp_pcap(path, [Audio.silence(40), Audio.tone(40, amplitude=16000)])
    quiet, _, loud, _ = (rtp[12:] for _, rtp in packets(path))
    assert set(quiet) == {0xFF}
    assert min(loud) < 0x20  # µ-law inverts: loud samples have small codes


def test_a_sipp_step_plays_the_pcap_after_the_leading_pause(tmp_path: Path) -> None:
    steps = dtmf_xml(["W1", Audio.silence(200)], tmp_path)
    assert steps.startswith('<pause milliseconds="1000"/>')
    assert 'play_pcap_audio="' in steps and steps.endswith('<pause milliseconds="660"/>')
    assert dtmf_xml("", tmp_path) == "" and len(list(tmp_path.glob("rtp-*.pcap"))) == 1


def test_a_key_that_is_not_on_a_keypad_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot press"):
        write_rtp_pcap(tmp_path / "x.pcap", ["A"])
