"""Rendering transcripts for clients: our JSON (TranscriptionResponse) and the OpenAI-compatible formats
(json, text, srt, vtt, verbose_json)."""

from __future__ import annotations

from model.decoding.results import SegmentResult, Transcript
from service.protocol import AlternativeOut, ModelInfo, SegmentOut, TokenOut, TranscriptionResponse, WordOut


def segment_out(segment: SegmentResult, with_tokens: bool = True) -> SegmentOut:
    return SegmentOut(
        id=segment.index, start=segment.start_s, end=segment.end_s, text=segment.text,
        confidence=segment.confidence,
        tokens=[TokenOut(text=t.text, start=t.start_s, end=t.end_s, confidence=t.confidence) for t in segment.tokens]
        if with_tokens else [],
        words=[WordOut(text=w.text, start=w.start_s, end=w.end_s, confidence=w.confidence) for w in segment.words]
        if with_tokens else [],
        alternatives=[AlternativeOut(text=a.text, confidence=a.confidence) for a in segment.alternatives],
        locale=segment.locale,
    )


def transcription_response(
    transcript: Transcript, request_id: str, model: ModelInfo, processing_s: float, timestamps: bool = True
) -> TranscriptionResponse:
    return TranscriptionResponse(
        request_id=request_id, text=transcript.text, locale=transcript.locale,
        locale_probability=transcript.locale_probability, duration_s=round(transcript.duration_s, 3),
        segments=[segment_out(s, timestamps) for s in transcript.segments], model=model,
        processing_s=round(processing_s, 4),
    )


def timestamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{n}\n{timestamp(s.start_s, ',')} --> {timestamp(s.end_s, ',')}\n{s.text}\n"
        for n, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [f"{timestamp(s.start_s, '.')} --> {timestamp(s.end_s, '.')}\n{s.text}\n" for s in transcript.segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_openai_verbose(transcript: Transcript, words: bool, segments: bool) -> dict:
    """OpenAI's verbose_json shape; `language` is the locale's language name as OpenAI reports it."""
    body: dict = {"task": "transcribe", "language": openai_language(transcript.locale),
                  "duration": round(transcript.duration_s, 3), "text": transcript.text}
    if segments:
        body["segments"] = [
            {"id": s.index, "seek": 0, "start": s.start_s, "end": s.end_s, "text": s.text, "tokens": [],
             "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0,
             "confidence": s.confidence}
            for s in transcript.segments
        ]
    if words:
        body["words"] = [{"word": w.text, "start": w.start_s, "end": w.end_s, "confidence": w.confidence}
                         for s in transcript.segments for w in s.words]
    return body


def openai_language(locale: str) -> str:
    return {"zh-CN": "chinese", "yue-HK": "cantonese", "en-US": "english"}.get(locale, locale)
