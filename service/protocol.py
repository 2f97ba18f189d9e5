"""The wire protocol, in one place: REST upload parameters and response bodies and the WebSocket `/v1/stream`
messages, as pydantic models. docs/protocol.md is written from these, and they appear in the OpenAPI description."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, ClassVar, Literal, Self, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from model.frontend.geometry import SAMPLE_RATE
from model.network.encoder import ENCODER_FRAME_MS
from model.recognition.options import DecodeOptions, EndpointConfig, FinalReason
from model.text.locales import ALIASES

MAX_HOTWORD_CHARS = 100  # per phrase: a name or a short phrase, not a document
MAX_HOTWORDS = 100  # phrases per request or stream (a server may allow fewer on uploads: ASR_MAX_HOTWORDS)
MAX_HOTWORD_BOOST = 10.0  # log-probability bonus per hotword token, streams and uploads alike
MAX_NBEST = 10  # alternatives per segment (a server may allow fewer on uploads: ASR_MAX_NBEST)
MAX_CHUNK_MS = 2560  # the longest streaming chunk, of an upload's `chunk_ms` or the server's ASR_CHUNK_MS
RedactMode = Literal["none", "pii"]  # what results mask: nothing, or personal data (service/redaction.py)
EntityKind = Literal["phone_number", "cn_resident_id", "bank_card", "email", "digit_string"]  # service/pii.py
# as heard (no punctuation, numbers as words), or written: punctuated, cased, numbers as digits (service/written.py)
TextFormat = Literal["spoken", "written"]
FinalMessageReason = Literal[FinalReason, "shutdown"]  # a final's reason: the model's, or the server's shutdown
# an upload's channels: mixed to mono, or each on its own (service/channels.py)
ChannelMode = Literal["mixed", "separate"]


# ------------------------------------------------------------------------------------------------ results


class TokenOut(BaseModel):
    text: str
    start: float = Field(description="seconds from the start of the audio")
    end: float
    confidence: float = Field(ge=0.0, le=1.0)


class WordOut(BaseModel):
    text: str = Field(description="an English word (its subword tokens joined) or one Chinese character")
    start: float = Field(description="seconds from the start of the audio: its first token's start")
    end: float = Field(description="its last token's end plus the usual rest of a syllable (a CTC token fires near "
                       "where its sound begins), up to the next word's start")
    confidence: float = Field(ge=0.0, le=1.0, description="the lowest confidence of its tokens")


class AlternativeOut(BaseModel):
    text: str
    confidence: float = Field(ge=0.0, le=1.0, description="posterior within the n-best list")


class RedactionOut(BaseModel):
    entity: EntityKind
    start: float = Field(description="seconds from the start of the audio: mute from here")
    end: float = Field(description="to here")
    segment: int = Field(description="the segment it was masked in")
    channel: int | None = Field(default=None, description="the channel it was heard on (channels=separate)")


class SegmentOut(BaseModel):
    id: int
    start: float
    end: float
    text: str
    raw_text: str | None = Field(default=None, description="with format=written: the text as heard (tokens and words "
                                 "are always as heard)")
    confidence: float
    tokens: list[TokenOut] = Field(default_factory=list)
    words: list[WordOut] = Field(default_factory=list, description="the tokens grouped into words")
    alternatives: list[AlternativeOut] = Field(default_factory=list)
    locale: str | None = Field(default=None, description="the locale this segment was decoded as; with 'auto', a "
                               "segment that is surely another locale than the recording's is decoded as that one")
    channel: int | None = Field(default=None, description="the channel it was heard on, with channels=separate")
    channel_name: str | None = Field(default=None, description="that channel's name from channel_names")


class ModelInfo(BaseModel):
    name: str
    version: str


class ChannelOut(BaseModel):
    channel: int
    name: str | None = None
    text: str = Field(description="this channel's segments' text")
    locale: str
    locale_probability: float | None = None


class TranscriptionResponse(BaseModel):
    request_id: str
    text: str
    raw_text: str | None = Field(default=None, description="with format=written: the text as heard")
    locale: str
    locale_probability: float | None = Field(default=None, description="set when locale was 'auto'")
    duration_s: float
    segments: list[SegmentOut]
    channels: list[ChannelOut] | None = Field(default=None, description="with channels=separate: each channel's text")
    redactions: list[RedactionOut] | None = Field(default=None, description="with redaction on: each masked entity")
    model: ModelInfo
    processing_s: float


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code")
    message: str
    request_id: str | None = None


# ------------------------------------------------------------------------------------------ REST: uploads


def case_of(default: str | None) -> BeforeValidator:
    """A case as a form sends it: in any letter case, spaces around it; an empty value is the default."""
    return BeforeValidator(lambda value: (value.strip().lower() or default) if isinstance(value, str) else value)


def timestamps_on(value: object) -> object:
    """`timestamps`: false, 0 or no (in any letter case) turn them off; any other value leaves them on."""
    return value.lower() not in {"false", "0", "no"} if isinstance(value, str) else value


def hotword_phrases(values: tuple[str, ...]) -> tuple[str, ...]:
    """The phrases of every value given, each value comma- (or newline-) separated."""
    phrases = tuple(p.strip() for value in values for p in value.replace("\n", ",").split(",") if p.strip())
    if any(len(phrase) > MAX_HOTWORD_CHARS for phrase in phrases):
        raise PydanticCustomError("hotword_too_long", "a hotword is at most {limit} characters",
                                  {"limit": MAX_HOTWORD_CHARS})
    return phrases


ChunkMs = Annotated[int, Field(ge=ENCODER_FRAME_MS, le=MAX_CHUNK_MS, multiple_of=ENCODER_FRAME_MS)]


class UploadFields(BaseModel):
    """An upload's parameters besides its audio, which both upload routes take: query string or multipart form
    fields (`from_form`). The routes publish their model as their OpenAPI request (service/routes/transcription.py)."""
    model_config = ConfigDict(extra="ignore", frozen=True)  # a name the route does not know is ignored
    # a field's values are followed by those of these names
    ALSO_READ: ClassVar[dict[str, tuple[str, ...]]] = {"hotwords": ("hotword", "prompt")}

    locale: str | SkipJsonSchema[None] = None  # each route's own field: `locale`, or OpenAI's `language`
    nbest: int = Field(default=DecodeOptions.nbest, ge=1, le=MAX_NBEST,
                       description="alternatives per segment (a server may allow fewer: ASR_MAX_NBEST)")
    hotwords: Annotated[tuple[str, ...], AfterValidator(hotword_phrases)] = Field(
        default=(), description="comma-separated phrases to favour, written as names are (normalised as transcripts "
        f"are), at most {MAX_HOTWORD_CHARS} characters each; repeatable (`hotword` and `prompt` add more)")
    hotword_boost: float = Field(default=DecodeOptions.hotword_boost, ge=0.0, le=MAX_HOTWORD_BOOST,
                                 allow_inf_nan=False, description="log-probability bonus per token of a hotword (as a "
                                 "stream's; bench/bench_hotwords.py)")
    chunk_ms: ChunkMs | SkipJsonSchema[None] = Field(
        default=None, description="decode with the streaming model's chunked attention at this chunk size, as "
                                  "/v1/stream would; unset: full context")
    channels: Annotated[ChannelMode, case_of("mixed")] = Field(
        default="mixed", description="mixed: one transcript of all channels mixed to mono; separate: each channel "
                                     "recognised on its own (one party of a call per channel)")
    channel_names: str | SkipJsonSchema[None] = Field(
        default=None, description="comma-separated names of the channels in order, with channels=separate "
                                  "(agent,customer)")
    redact: Annotated[RedactMode, case_of("none")] = Field(
        default="none", description="pii: mask phone, resident ID and card numbers, emails and long digit strings "
                                    "(ASR_REDACT=pii masks them in every request whatever this says)")
    format: Annotated[TextFormat | SkipJsonSchema[None], case_of(None)] = Field(
        default=None, description="written: punctuated, English cased, numbers, dates, times and amounts as digits "
                                  "(一共350块钱。, \"I paid $350.\", 23號), the text as heard in raw_text; spoken: the "
                                  "text as heard; unset: the server's ASR_TEXT_FORMAT (written)")

    @classmethod
    def from_form(cls, form: Mapping[str, list[str]]) -> Self:
        """From every value sent under each name (the query string's first): a repeated field (a tuple) keeps them
        all, any other the first. Raises pydantic's ValidationError."""
        data: dict[str, str | list[str]] = {}
        for name, field in cls.model_fields.items():
            wire = field.alias or name
            values = [value for key in (wire, *cls.ALSO_READ.get(wire, ())) for value in form.get(key, [])]
            if values:
                data[wire] = values if get_origin(field.annotation) is tuple else values[0]
        return cls.model_validate(data)


class TranscribeFields(UploadFields):
    """`POST /transcribe`."""
    locale: str = Field(default="auto", description="a locale of the model (GET /v1/models), an alias of one "
                                                    f"({', '.join(ALIASES)}) or auto")
    timestamps: Annotated[bool, BeforeValidator(timestamps_on)] = Field(
        default=True, description="per-token and per-word times and confidences in each segment")


OpenAIResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]


def known_granularities(values: object) -> object:
    """A granularity OpenAI's API may add one day is ignored, not refused."""
    return [v for v in values if v in get_args(Granularity)] if isinstance(values, list) else values


class OpenAITranscriptionFields(UploadFields):
    """`POST /v1/audio/transcriptions`, with OpenAI's names; the fields of `/transcribe` are taken too."""
    ALSO_READ: ClassVar[dict[str, tuple[str, ...]]] = {
        **UploadFields.ALSO_READ, "timestamp_granularities[]": ("timestamp_granularities",)}

    model: str | SkipJsonSchema[None] = Field(default=None, description="ignored: the server's model answers")
    locale: str | SkipJsonSchema[None] = Field(default=None, alias="language", description="as /transcribe's locale")
    prompt: str | SkipJsonSchema[None] = Field(default=None, description="hotwords, comma-separated")
    response_format: OpenAIResponseFormat = Field(default="json", description="json: {\"text\"}; text, srt or vtt; "
                                                  "verbose_json: OpenAI's segments (and words)")
    timestamp_granularities: Annotated[tuple[Granularity, ...], BeforeValidator(known_granularities)] = Field(
        default=(), alias="timestamp_granularities[]", description="verbose_json: word adds words, segment "
                                                                  "(or neither) segments")


# ------------------------------------------------------------------------------ WebSocket: client -> server


class EndpointOverrides(BaseModel):
    """A stream's own endpointing: any of `EndpointConfig`'s rules (model.recognition.options); unset ones are the
    server's (ASR_MIN_TRAILING_SILENCE_S and so on, whose defaults are EndpointConfig's)."""
    model_config = ConfigDict(extra="forbid")
    min_trailing_silence_s: float | None = Field(default=None, gt=0, le=30)
    max_silence_without_speech_s: float | None = Field(default=None, gt=0, le=60)
    max_segment_s: float | None = Field(default=None, gt=0, le=60)
    long_segment_s: float | None = Field(default=None, gt=0, le=60)
    long_segment_trailing_silence_s: float | None = Field(default=None, gt=0, le=30)


assert set(EndpointOverrides.model_fields) == {f.name for f in fields(EndpointConfig)}, "one override per rule"


class StartMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["start"]
    locale: str = "auto"
    sample_rate: int = Field(default=SAMPLE_RATE, ge=8000, le=48000)
    encoding: Literal["pcm_s16le", "pcm_f32le"] = "pcm_s16le"
    interim_results: bool = True
    nbest: int = Field(default=DecodeOptions.nbest, ge=1, le=MAX_NBEST)
    hotwords: list[Annotated[str, Field(max_length=MAX_HOTWORD_CHARS)]] = Field(
        default_factory=list, max_length=MAX_HOTWORDS,
        description="phrases to favour, written as names are (normalised as "
        "transcripts are; in English their words join the lexicon), each at most 100 characters")
    hotword_boost: float = Field(default=DecodeOptions.hotword_boost, ge=0.0, le=MAX_HOTWORD_BOOST)
    endpointing: EndpointOverrides | None = None
    full_context_finals: bool | None = Field(
        default=None, description="decode each final again from its segment's audio at full context (partials stay "
                                  "streaming); unset: the server's ASR_FULL_CONTEXT_FINALS")
    format: TextFormat | None = Field(default=None, description="written: finals punctuated, English cased, with "
                                      "numbers, dates and amounts as digits, the text as heard in raw_text (partials "
                                      "stay as heard); unset: the server's ASR_TEXT_FORMAT (written)")
    redact: RedactMode = Field(default="none", description="pii: mask personal data in partials and finals "
                                           "(the server's ASR_REDACT=pii masks them whatever this says)")


class StopMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["stop"]


ClientMessage = Annotated[Union[StartMessage, StopMessage], Field(discriminator="type")]
client_message_adapter: TypeAdapter = TypeAdapter(ClientMessage)

# ------------------------------------------------------------------------------ WebSocket: server -> client


class ReadyMessage(BaseModel):
    type: Literal["ready"] = "ready"
    session_id: str
    locale: str
    sample_rate: int
    chunk_ms: int
    full_context_finals: bool = Field(default=False,
                                      description="whether this stream's finals are decoded again at full context")
    redact: RedactMode = Field(default="none", description="whether this stream's results are masked")
    model: ModelInfo


class PartialMessage(BaseModel):
    type: Literal["partial"] = "partial"
    segment: int
    text: str
    tokens: list[TokenOut]
    redactions: list[RedactionOut] | None = Field(default=None, description="with redaction on: each masked entity")


class FinalMessage(BaseModel):
    type: Literal["final"] = "final"
    segment: int
    text: str
    raw_text: str | None = Field(default=None, description="with format=written: the text as heard")
    start: float
    end: float
    confidence: float
    tokens: list[TokenOut]
    words: list[WordOut] = Field(default_factory=list, description="the tokens grouped into words")
    alternatives: list[AlternativeOut]
    locale: str
    locale_probability: float | None = None
    reason: FinalMessageReason = Field(description="why the segment ended: a pause (endpoint), its length "
                                                   "(max_segment), the client's stop, or the server's shutdown")
    latency_ms: float = Field(description="from the segment's last audio reaching the server to this message")
    redactions: list[RedactionOut] | None = Field(default=None, description="with redaction on: each masked entity")


class EndMessage(BaseModel):
    type: Literal["end"] = "end"
    segments: int
    duration_s: float


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


ServerMessage = Annotated[
    Union[ReadyMessage, PartialMessage, FinalMessage, EndMessage, ErrorMessage], Field(discriminator="type")
]
server_message_adapter: TypeAdapter = TypeAdapter(ServerMessage)

STREAM_MESSAGES = (StartMessage, StopMessage, ReadyMessage, PartialMessage, FinalMessage, EndMessage, ErrorMessage)

# WebSocket close codes (RFC 6455 section 7.4.1) used by the server.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
