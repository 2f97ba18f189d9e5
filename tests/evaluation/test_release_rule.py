"""The real-speech release rule: a paired fall beyond the interval ships, a rise anywhere or no fall does not."""

from model.evaluation.release_rule import decide, paired_differences, synthetic_rises


def evaluation(errors_by_locale: dict[str, list[int]], units: int = 10) -> dict:
    ids, locales, errors = [], [], []
    for locale, values in errors_by_locale.items():
        for i, value in enumerate(values):
            ids.append(f"{locale}-{i}")
            locales.append(locale)
            errors.append(value)
    per_mode = {"full_context": errors, "chunk_640ms": errors}
    return {"per_utterance": {"ids": ids, "locales": locales, "reference_units": [units] * len(ids),
                              "errors": per_mode}}


def test_a_fall_in_one_locale_and_no_rise_ships():
    released = evaluation({"zh-CN": [9] * 20, "en-US": [5] * 20})
    candidate = evaluation({"zh-CN": [4] * 20, "en-US": [5] * 20})
    real = paired_differences(released, candidate)
    assert real["zh-CN"]["full_context"]["verdict"] == "falls"
    assert real["en-US"]["full_context"]["verdict"] == "within noise"
    assert decide(real, None)[0]


def test_a_rise_anywhere_stops_the_release():
    released = evaluation({"zh-CN": [9] * 20, "en-US": [2] * 20})
    candidate = evaluation({"zh-CN": [4] * 20, "en-US": [6] * 20})
    ships, reason = decide(paired_differences(released, candidate), None)
    assert not ships and "rises" in reason


def test_noise_alone_does_not_ship():
    released = evaluation({"zh-CN": [9, 1] * 10})
    candidate = evaluation({"zh-CN": [1, 9] * 10})  # the same total, errors moved between utterances
    real = paired_differences(released, candidate)
    assert real["zh-CN"]["full_context"]["verdict"] == "within noise"
    assert not decide(real, None)[0]


def test_a_synthetic_test_rise_over_ten_percent_stops_the_release():
    released = evaluation({"zh-CN": [9] * 20})
    candidate = evaluation({"zh-CN": [4] * 20})
    table = lambda rate: {"modes": {"full_context": {"per_locale": {"zh-CN": {"error_rate": rate}}}}}  # noqa: E731
    assert decide(paired_differences(released, candidate), synthetic_rises(table(0.10), table(0.105)))[0]
    assert not decide(paired_differences(released, candidate), synthetic_rises(table(0.10), table(0.12)))[0]
