"""The network and its files: the streaming encoder (encoder, with the Whisper backbone in whisper_backbone), the
attention decoder (decoder), the whole recognizer network with its heads (model), self-describing checkpoints
(checkpoint), each device's float format (precision) and the export of one streaming step (export)."""
