"""The `openasr` command: serve, transcribe, stream, train, evaluate, bench, lm adapt. Each subcommand is thin over the
config objects it drives. Heavy imports (torch, the model) happen inside the handlers, so `--help` and the
client-side commands start quickly."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path

DEFAULT_SERVER = os.environ.get("OPENASR_SERVER", "http://127.0.0.1:8000")
REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHES = {"features": "bench.bench_features", "encoder": "bench.bench_encoder", "finals": "bench.bench_finals"}
EXTENSIONS = {"text": "txt", "json": "json", "srt": "srt", "vtt": "vtt"}


# ------------------------------------------------------------------------------------------------- serve


def serve(args: argparse.Namespace) -> int:
    # Before torch loads OpenMP: idle OpenMP workers sleep instead of spinning, so the device thread's kernels do
    # not hold the cores that the event loop and the search threads need. Spinning workers also collapse when
    # anything else takes a core (a 44-stream encoder step went from 160 ms to 410 ms next to a niced job).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from service.uvicorn_runner import run
    from service.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "checkpoint": args.checkpoint}.items()
                 if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(settings)  # uvicorn with a graceful stream drain on SIGTERM and API keys redacted from access logs
    return 0


# -------------------------------------------------------------------------------------------- transcribe


def hotword_list(value: str | None) -> list[str]:
    return [w.strip() for w in (value or "").split(",") if w.strip()]


def server_transcriber(args: argparse.Namespace) -> Callable:
    from service.client import ASRClient

    client = ASRClient(args.server, api_key=args.api_key, timeout=args.timeout)
    return lambda path: client.transcribe(path, locale=args.locale, nbest=args.nbest,
                                          hotwords=hotword_list(args.hotwords), chunk_ms=args.chunk_ms,
                                          hotword_boost=args.hotword_boost, channels=args.channels,
                                          channel_names=hotword_list(args.channel_names), redact=args.redact,
                                          format=args.text_format)


def in_process_transcriber(args: argparse.Namespace) -> Callable:
    """Decode here with the checkpoint, no server: the same Recognizer and the same response shape."""
    import torch

    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from model.network.encoder import ENCODER_FRAME_MS
    from model.recognition.recognizer import DecodeOptions, Recognizer
    from model.text.locales import resolve_locale
    from service.loading import choose_device
    from service.formats import transcription_response
    from service.protocol import ModelInfo
    from service.pii import PiiOptions
    from service.routes.transcription import finished_text
    from service.settings import Settings

    if args.channels == "separate":
        raise ValueError("--channels separate needs a server (the channels of a call decode in one device batch "
                         "there); run `openasr serve` and leave out --in-process")
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT)
    recognizer = Recognizer(loaded, device=choose_device(args.device))
    options = DecodeOptions(locale=resolve_locale(args.locale, recognizer.locales), nbest=args.nbest,
                            hotwords=tuple(hotword_list(args.hotwords)),
                            hotword_boost=DecodeOptions.hotword_boost if args.hotword_boost is None
                            else args.hotword_boost,
                            chunk_frames=args.chunk_ms // ENCODER_FRAME_MS if args.chunk_ms else None)
    model = ModelInfo(name=loaded.name, version=loaded.version)
    text_format = args.text_format or Settings.model_fields["text_format"].default  # as a server would

    def transcribe_file(path: str):
        started = time.perf_counter()
        transcript = recognizer.transcribe(load_audio_file(path), options)
        shown = finished_text(transcript, args.redact or "none", text_format, PiiOptions(), options.hotwords)
        return transcription_response(shown, uuid.uuid4().hex, model, time.perf_counter() - started)

    return transcribe_file


def as_transcript(response):
    """TranscriptionResponse -> model.decoding.results.Transcript, so server results use the same SRT/VTT writers."""
    from model.decoding.results import Alternative, SegmentResult, TokenResult, Transcript, WordResult

    segments = tuple(
        SegmentResult(s.id, s.start, s.end, s.text, s.confidence,
                      tuple(TokenResult(t.text, t.start, t.end, t.confidence) for t in s.tokens),
                      tuple(Alternative(a.text, a.confidence) for a in s.alternatives), s.locale,
                      tuple(WordResult(w.text, w.start, w.end, w.confidence) for w in s.words), s.channel)
        for s in response.segments)
    return Transcript(response.text, response.locale, response.locale_probability, response.duration_s, segments)


def render(response, output_format: str) -> str:
    if output_format == "json":
        return response.model_dump_json()
    if output_format in {"srt", "vtt"}:
        from service.formats import to_srt, to_vtt

        names = {c.channel: c.name for c in response.channels or []}
        return (to_srt if output_format == "srt" else to_vtt)(as_transcript(response), names)
    if response.channels:  # a call: each party's text on its own line, named as the request named it
        return "".join(f"{c.name or f'channel {c.channel}'}: {c.text}\n" for c in response.channels)
    return response.text + "\n"


def emit(path: str, text: str, args: argparse.Namespace, many: bool) -> None:
    from tqdm import tqdm

    if args.output_dir:
        target = Path(args.output_dir) / f"{Path(path).stem}.{EXTENSIONS[args.format]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        return
    if many and args.format == "json":
        text = json.dumps({"file": path, **json.loads(text)}, ensure_ascii=False)  # JSON Lines, one per file
    elif many:
        text = f"==> {path} <==\n{text}"
    tqdm.write(text.rstrip("\n"), file=sys.stdout)  # tqdm.write keeps the progress bar below the output


def transcribe(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    from model.frontend.audio import AudioDecodeError
    from model.text.locales import UnsupportedLocaleError
    from service.client import ASRError

    try:
        transcriber = in_process_transcriber(args) if args.in_process else server_transcriber(args)
    except (UnsupportedLocaleError, FileNotFoundError, ValueError) as error:
        print(f"openasr transcribe: {error}", file=sys.stderr)
        return 2
    many, failures = len(args.files) > 1, 0
    for path in tqdm(args.files, unit="file", disable=not many, file=sys.stderr):
        try:
            emit(path, render(transcriber(path), args.format), args, many)
        except (ASRError, AudioDecodeError, OSError, httpx.HTTPError) as error:  # report it, go on with the rest
            failures += 1
            tqdm.write(f"{path}: {type(error).__name__}: {error}", file=sys.stderr)
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------------ stream


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two, which `len` would undercount when blanking a line."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class LinePrinter:
    """Partials rewrite one terminal line in place ('\\r'); finals end it and stay."""

    def __init__(self, out, partials: bool) -> None:
        self.out, self.partials, self.width = out, partials, 0

    def partial(self, text: str) -> None:
        if not self.partials:
            return
        width = display_width(text)
        self.out.write("\r" + text + " " * max(0, self.width - width))
        self.out.flush()
        self.width = width

    def clear(self) -> None:
        if self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.out.flush()

    def final(self, line: str) -> None:
        self.clear()
        self.out.write(line + "\n")
        self.out.flush()


def stream(args: argparse.Namespace) -> int:
    from service.client import ASRClient, StreamError

    printer = LinePrinter(sys.stdout, sys.stdout.isatty() if args.partials is None else args.partials)
    with ASRClient(args.server, api_key=args.api_key, timeout=args.timeout) as client:
        try:
            for event in client.stream(args.file, locale=args.locale, nbest=args.nbest,
                                       hotwords=hotword_list(args.hotwords), realtime=args.realtime,
                                       hotword_boost=args.hotword_boost,
                                       full_context_finals=args.full_context_finals, redact=args.redact,
                                       format=args.text_format):
                if event.type == "ready":
                    print(f"streaming {args.file} (locale {event.locale}, chunks of {event.chunk_ms} ms)",
                          file=sys.stderr)
                elif event.type == "partial":
                    printer.partial(event.text)
                elif event.type == "final" and event.text:
                    printer.final(f"[{event.start:.2f}-{event.end:.2f}] {event.text}")
                elif event.type == "end":
                    print(f"{event.segments} segment(s), {event.duration_s:.2f} s of audio", file=sys.stderr)
        except StreamError as error:
            printer.clear()
            print(f"openasr stream: {error.code}: {error.message} (close code {error.close_code})", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"openasr stream: cannot reach {args.server}: {error}", file=sys.stderr)
            return 1
    return 0


# ---------------------------------------------------------------------------- train, evaluate, bench


def train(args: argparse.Namespace) -> int:
    from model.training.train import main as train_main

    train_main(args.passthrough)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from model.evaluation.evaluate import main as evaluate_main

    evaluate_main(args.passthrough)
    return 0


def bench(args: argparse.Namespace) -> int:
    """The benchmarks live in the source checkout (bench/), not in the installed package: run them from there."""
    if not (REPO_ROOT / "bench").is_dir():
        print("openasr bench: needs a source checkout (bench/ is not installed with the package)", file=sys.stderr)
        return 2
    names = list(BENCHES) if args.which == "all" else [args.which]
    for name in names:
        result = subprocess.run([sys.executable, "-m", BENCHES[name], *args.passthrough], cwd=REPO_ROOT, check=False)
        if result.returncode:
            return result.returncode
    return 0


# -------------------------------------------------------------------------------------------- lm adapt


def lm_adapt(args: argparse.Namespace) -> int:
    """Mix each locale's domain text into its LM (model.decoding.adaptation) and write the adapted checkpoint."""
    from model.decoding.adaptation import DomainTextError, adapt_checkpoint
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, update_checkpoint

    if len(args.text) != len(args.locale):
        print("openasr lm adapt: give one --locale for each --text, in the same order", file=sys.stderr)
        return 2
    if Path(args.out).suffix not in {".pt", ".pth"} or Path(args.out).resolve() == DEFAULT_CHECKPOINT.resolve():
        print("openasr lm adapt: --out must be a .pt file other than the bundled model", file=sys.stderr)
        return 2
    try:
        loaded = load_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT)
        reports = adapt_checkpoint(loaded, dict(zip(args.locale, args.text)))
    except (DomainTextError, FileNotFoundError, ValueError) as error:  # an unknown locale is a ValueError
        print(f"openasr lm adapt: {error}", file=sys.stderr)
        return 2
    update_checkpoint(args.out, loaded)
    print(json.dumps({"checkpoint": str(args.out), "adapted": reports}, ensure_ascii=False, indent=1))
    return 0


# ------------------------------------------------------------------------------------------------ parser

EPILOGS = {
    "serve": "examples:\n  openasr serve --port 8000\n  ASR_PORT=8000 ASR_DEVICE=cpu openasr serve",
    "transcribe": "examples:\n  openasr transcribe meeting.wav\n"
                  "  openasr transcribe --locale en-US --format srt talk.mp3 > talk.srt\n"
                  "  openasr transcribe --server http://asr.example:8000 --format json *.wav --output-dir out/\n"
                  "  openasr transcribe --in-process --locale zh-CN --hotwords 北京,上海 call.flac\n\n"
                  "json prints one TranscriptionResponse per line (with a \"file\" key when there are several files).",
    "stream": "examples:\n  openasr stream --realtime --locale en-US talk.wav\n"
              "  openasr stream --server https://asr.example call.flac\n\n"
              "partials rewrite the current line ('\\r'); each final is printed on its own line as [start-end] text.",
    "train": "examples:\n  openasr train --config model/configs/synth_small.toml\n"
             "  openasr train --config model/configs/synth_small.toml --max-minutes 30\n\n"
             "all options go to `python -m model.training.train` "
             "(see its --help via: python -m model.training.train --help).",
    "evaluate": "examples:\n  openasr evaluate --manifest data/synth/test.jsonl\n"
                "  openasr evaluate --checkpoint runs/x/averaged.pt --manifest data/synth/test.jsonl --card card.md\n\n"
                "all options go to `python -m model.evaluation.evaluate` "
                "(see: python -m model.evaluation.evaluate --help).",
    "bench": "examples:\n  openasr bench all\n  openasr bench features --seconds 30 --repeats 5\n"
             "  openasr bench encoder --chunk-ms 320 --threads 2\n\n"
             "options after the benchmark name go to bench/bench_<name>.py; with `all`, to each.",
    "adapt": "examples:\n  openasr lm adapt --locale yue-HK --text calls_yue.txt --out adapted.pt\n"
             "  openasr lm adapt --locale zh --text zh.txt --locale en --text en.txt \\\n"
             "      --checkpoint base.pt --out adapted.pt\n\n"
             "one sentence or phrase per line (UTF-8); one line in 10 is held out to tune the mixture weight.\n"
             "Serve the result with ASR_CHECKPOINT=adapted.pt (or adapt as the server starts: ASR_DOMAIN_TEXT);\n"
             "docs/adaptation.md.",
}


def subcommand(commands, name: str, help_text: str, handler: Callable) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text, epilog=EPILOGS[name],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler, passthrough_allowed=name in {"train", "evaluate", "bench"})
    return parser


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help="service URL (default: $OPENASR_SERVER or %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("OPENASR_API_KEY"), help="sent as a Bearer token")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default %(default)s)")
    parser.add_argument("--locale", default="auto", help="zh-CN, yue-HK, en-US (or zh, yue, en), or auto")
    parser.add_argument("--nbest", type=int, default=1, help="alternatives per segment, 1-10")
    parser.add_argument("--hotwords", help="comma-separated phrases to favour, written as names are")
    parser.add_argument("--hotword-boost", type=float, help="bonus per hotword token, 0-10 (default: the server's, 2)")
    parser.add_argument("--redact", choices=["none", "pii"],
                        help="pii: mask phone, ID and card numbers, emails and long digit strings (default: the "
                             "server's)")
    parser.add_argument("--text-format", choices=["spoken", "written"],
                        help="written: punctuated, cased, numbers, dates and amounts as digits; spoken: as heard "
                             "(default: the server's, written)")


def add_transcribe(commands) -> None:
    parser = subcommand(commands, "transcribe", "transcribe recordings (via a server, or in this process)", transcribe)
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG/Opus, MP3)")
    add_client_options(parser)
    parser.add_argument("--in-process", action="store_true", help="decode here with the checkpoint; no server")
    parser.add_argument("--checkpoint", help="with --in-process: the model (default: the bundled one)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="with --in-process")
    parser.add_argument("--threads", type=int, default=0, help="with --in-process: torch threads (0: torch's default)")
    parser.add_argument("--format", choices=list(EXTENSIONS), default="text",
                        help="output format (default %(default)s)")
    parser.add_argument("--chunk-ms", type=int, help="decode with the streaming model's chunk size (multiple of 40)")
    parser.add_argument("--output-dir", help="write FILE's result to DIR/<name>.<txt|json|srt|vtt> instead of stdout")
    parser.add_argument("--channels", choices=["mixed", "separate"],
                        help="separate: each channel of a call recognised on its own (default: mixed to mono)")
    parser.add_argument("--channel-names", help="with --channels separate: names of the channels in order "
                                                "(agent,customer)")


def add_stream(commands) -> None:
    parser = subcommand(commands, "stream", "stream a recording over the WebSocket API and print results live", stream)
    parser.add_argument("file", metavar="FILE", help="an audio file; it is sent as 16-bit PCM at its own rate")
    add_client_options(parser)
    parser.add_argument("--realtime", action="store_true", help="send at real-time speed, as a microphone would")
    parser.add_argument("--partials", action=argparse.BooleanOptionalAction, default=None,
                        help="show partial results in place (default: when stdout is a terminal)")
    parser.add_argument("--full-context-finals", action=argparse.BooleanOptionalAction, default=None,
                        help="decode each final again at full context (default: the server's setting)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openasr", description="Multi-locale streaming speech recognition.",
        epilog="examples:\n  openasr serve\n  openasr transcribe --format srt talk.wav\n"
               "  openasr stream --realtime talk.wav\n  openasr train --config model/configs/synth_small.toml\n\n"
               "openasr COMMAND --help shows each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = subcommand(commands, "serve", "serve the model over HTTP and WebSocket (and the web page at /)",
                              serve)
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--checkpoint")
    add_transcribe(commands)
    add_stream(commands)
    subcommand(commands, "train", "train a model (runs python -m model.training.train)", train)
    subcommand(commands, "evaluate", "score a checkpoint on a manifest (runs python -m model.evaluation.evaluate)",
               evaluate)
    bench_parser = subcommand(commands, "bench", "run the speed benchmarks in bench/", bench)
    bench_parser.add_argument("which", choices=["features", "encoder", "all"], help="which benchmark")
    add_lm(commands)
    return parser


def add_lm(commands) -> None:
    lm_parser = commands.add_parser("lm", help="language models: adapt them to a deployment's own sentences",
                                    description="language models: adapt them to a deployment's own sentences")
    adapt = subcommand(lm_parser.add_subparsers(dest="lm_command", required=True, metavar="COMMAND"), "adapt",
                       "mix a locale's domain sentences into its language model and write the adapted checkpoint",
                       lm_adapt)
    adapt.add_argument("--text", action="append", required=True, metavar="FILE",
                       help="the domain's sentences, one per line (repeat with --locale for several locales)")
    adapt.add_argument("--locale", action="append", required=True,
                       help="the text's locale: zh-CN, yue-HK, en-US or an alias")
    adapt.add_argument("--checkpoint", help="the model to adapt (default: the bundled one)")
    adapt.add_argument("--out", required=True, help="where to write the adapted checkpoint (.pt)")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, passthrough = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if passthrough and not args.passthrough_allowed:
        parser.error(f"unrecognized arguments: {' '.join(passthrough)}")
    args.passthrough = passthrough
    code = args.handler(args)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
