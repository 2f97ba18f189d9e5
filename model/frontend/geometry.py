"""The audio geometry that every stage shares, torch-free so that the wire protocol (service/protocol.py, which the
Python client imports) reads it too: the sample rate, and the feature frames' window and hop."""

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FRAME_SHIFT_S = HOP_SAMPLES / SAMPLE_RATE
FRAME_SHIFT_MS = HOP_SAMPLES * 1000 // SAMPLE_RATE  # 10
