"""The front end: audio files and streams -> 16 kHz mono (audio) -> MFCC and pitch frames (features, pitch), and
long recordings cut at silences (segmenter)."""
