"""The recognition engine the service runs: what a caller chooses (options: decoding options, endpoint rules), the
shared, stateless Recognizer (recognizer: batched encoder steps, search and rescoring for uploads and streams), a
recording's spans merged into one transcript (spans), the per-stream state and its transitions with endpointing
(stream_decoder), and chunking a stream for the encoder (streaming)."""
