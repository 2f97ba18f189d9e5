"""model.evaluation.device_check compares an accelerator with the CPU; here (no GPU) it runs every check with the CPU as
the device, so that the command a GPU session runs first is known to work, and its verdict to follow the tolerances."""

import torch

from model.evaluation import device_check


def test_every_check_passes_with_the_cpu_as_the_device():
    from model.network.checkpoint import DEFAULT_CHECKPOINT

    results = device_check.run_checks(str(DEFAULT_CHECKPOINT), torch.device("cpu"))
    assert results["ok"] and all(results[name]["ok"] for name in ("serving", "streaming", "training", "export"))
    assert results["serving"]["full_context"]["texts_equal"] == results["serving"]["full_context"]["of"] >= 6
    assert results["streaming"]["chunked_vs_masked_full_max_abs"] <= device_check.ENCODER_TOLERANCE
    for mode in ("full_context", "chunk_640ms"):
        training = results["training"][mode]
        assert training["gradients_finite"] and training["loss_cpu"] > 0 and training["grad_norm_cpu"] > 0


def test_a_difference_beyond_tolerance_fails_the_check(monkeypatch):
    monkeypatch.setattr(device_check, "ENCODER_TOLERANCE", -1.0)  # any difference, even none, is now too large
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

    assert not device_check.check_export(load_checkpoint(DEFAULT_CHECKPOINT).model, torch.device("cpu"))["ok"]
