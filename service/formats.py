"""Rendering transcripts for clients: our JSON (TranscriptionResponse) and the OpenAI-compatible formats
(json, text, srt, vtt, verbose_json)."""

from __future__ import annotations

from collections.abc import Sequence

from model.decoding.results import SegmentResult, Transcript, join_texts
from service.channels import ChannelResult
from service.protocol import (AlternativeOut, ChannelOut, ModelInfo, RedactionOut, SegmentOut, TokenOut,
                              TranscriptionResponse, WordOut)
from service.recording import Shown
from service.redaction import Redaction


def segment_out(segment: SegmentResult, with_tokens: bool = True, channel_name: str | None = None,
                raw_text: str | None = None) -> SegmentOut:
    return SegmentOut(
        id=segment.index, start=segment.start_s, end=segment.end_s, text=segment.text, raw_text=raw_text,
        confidence=segment.confidence,
        tokens=[TokenOut(text=t.text, start=t.start_s, end=t.end_s, confidence=t.confidence) for t in segment.tokens]
        if with_tokens else [],
        words=[WordOut(text=w.text, start=w.start_s, end=w.end_s, confidence=w.confidence) for w in segment.words]
        if with_tokens else [],
        alternatives=[AlternativeOut(text=a.text, confidence=a.confidence) for a in segment.alternatives],
        locale=segment.locale, channel=segment.channel, channel_name=channel_name,
    )


def transcription_response(shown: Shown, request_id: str, model: ModelInfo, processing_s: float,
                           timestamps: bool = True, channels: Sequence[ChannelResult] = ()) -> TranscriptionResponse:
    """Our JSON; `channels` (channels=separate) adds each channel's text; the masked entities (redaction on) and the
    text as heard (format=written) come with `shown`."""
    transcript, names = shown.transcript, {c.index: c.name for c in channels}
    raw_texts = shown.raw_texts or (None,) * len(transcript.segments)
    return TranscriptionResponse(
        request_id=request_id, text=transcript.text,
        raw_text=shown.spoken_text if shown.raw_texts is not None else None,
        locale=transcript.locale, locale_probability=transcript.locale_probability,
        duration_s=round(transcript.duration_s, 3),
        segments=[segment_out(s, timestamps, None if s.channel is None else names.get(s.channel), raw)
                  for s, raw in zip(transcript.segments, raw_texts)],
        channels=[channel_out(c, transcript) for c in channels] or None, redactions=redactions_out(shown.redactions),
        model=model, processing_s=round(processing_s, 4),
    )


def channel_out(channel: ChannelResult, transcript: Transcript) -> ChannelOut:
    text = join_texts([s.text for s in transcript.segments if s.channel == channel.index])
    return ChannelOut(channel=channel.index, name=channel.name, text=text, locale=channel.locale,
                      locale_probability=channel.locale_probability)


def redactions_out(redactions: Sequence[Redaction] | None) -> list[RedactionOut] | None:
    if redactions is None:
        return None
    return [RedactionOut(entity=r.kind, start=r.start_s, end=r.end_s, segment=r.segment, channel=r.channel)
            for r in redactions]


def speaker(segment: SegmentResult, names: dict[int, str | None]) -> str | None:
    """Who said a segment, for subtitles: its channel's name, else "channel N"; None without channels."""
    return None if segment.channel is None else names.get(segment.channel) or f"channel {segment.channel}"


def timestamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript, names: dict[int, str | None] | None = None) -> str:
    """SubRip; a call's segments start with their speaker ("agent: ...")."""
    blocks = []
    for n, s in enumerate(transcript.segments, start=1):
        who = speaker(s, names or {})
        speaker_prefix = f"{who}: " if who else ""
        blocks.append(f"{n}\n{timestamp(s.start_s, ',')} --> {timestamp(s.end_s, ',')}\n{speaker_prefix}{s.text}\n")
    return "\n".join(blocks)


def to_vtt(transcript: Transcript, names: dict[int, str | None] | None = None) -> str:
    """WebVTT; a call's segments in voice spans (`<v agent>...`, WebVTT's voice tag)."""
    blocks = []
    for s in transcript.segments:
        who = speaker(s, names or {})
        voice = f"<v {who}>" if who else ""
        blocks.append(f"{timestamp(s.start_s, '.')} --> {timestamp(s.end_s, '.')}\n{voice}{s.text}\n")
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_openai_verbose(transcript: Transcript, words: bool, segments: bool, names: dict[int, str | None] | None = None,
                      redactions: Sequence[Redaction] | None = None) -> dict:
    """OpenAI's verbose_json shape; `language` is the locale's language name as OpenAI reports it. A call's
    segments also say their `channel` and `speaker`; with redaction on, the masked entities are `redactions`."""
    body: dict = {"task": "transcribe", "language": openai_language(transcript.locale),
                  "duration": round(transcript.duration_s, 3), "text": transcript.text}
    if segments:
        body["segments"] = [
            {"id": s.index, "seek": 0, "start": s.start_s, "end": s.end_s, "text": s.text, "tokens": [],
             "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0,
             "confidence": s.confidence,
             **({"channel": s.channel, "speaker": speaker(s, names or {})} if s.channel is not None else {})}
            for s in transcript.segments
        ]
    if words:
        body["words"] = [{"word": w.text, "start": w.start_s, "end": w.end_s, "confidence": w.confidence}
                         for s in transcript.segments for w in s.words]
    if redactions is not None:
        body["redactions"] = [r.model_dump() for r in redactions_out(redactions) or []]
    return body


def openai_language(locale: str) -> str:
    return {"zh-CN": "chinese", "yue-HK": "cantonese", "en-US": "english"}.get(locale, locale)
