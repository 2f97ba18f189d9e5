"""The recognition engine the service runs: the shared, stateless Recognizer (recognizer: batched encoder steps,
search and rescoring for uploads and streams), the per-stream state and its transitions with endpointing
(stream_decoder), and chunking a stream for the encoder (streaming)."""
