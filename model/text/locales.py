"""Locale names the service accepts: the model's BCP-47 codes, common aliases, and `auto` (detect)."""

from __future__ import annotations

from collections.abc import Sequence

AUTO = "auto"
# `auto`: how sure the locale head must be before decoding follows it, and on how much audio. A stream commits to
# a locale after LOCALE_COMMIT_S; a segment of LOCALE_SWITCH_S or more that is surely another locale than the
# stream's or the recording's (code-switching between utterances) is decoded as that locale.
LOCALE_SURE_PROBABILITY = 0.95
LOCALE_COMMIT_S = 0.6
LOCALE_SWITCH_S = 1.0
ALIASES = {
    "zh": "zh-CN", "cmn": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN", "cmn-hans-cn": "zh-CN", "mandarin": "zh-CN",
    "yue": "yue-HK", "zh-hk": "yue-HK", "yue-hk": "yue-HK", "zh-yue": "yue-HK", "cantonese": "yue-HK",
    "en": "en-US", "en-us": "en-US", "english": "en-US",
}


def aliases_of(supported: Sequence[str]) -> dict[str, str]:
    """The aliases that name one of the `supported` locales (what `resolve_locale` accepts besides the codes)."""
    return {alias: code for alias, code in ALIASES.items() if code in supported}


class UnsupportedLocaleError(ValueError):
    def __init__(self, requested: str, supported: Sequence[str]) -> None:
        super().__init__(f"unsupported locale {requested!r}; use one of {', '.join(supported)}, an alias "
                         f"({', '.join(sorted(aliases_of(supported)))}) or {AUTO!r}")
        self.requested = requested


def resolve_locale(requested: str | None, supported: Sequence[str]) -> str | None:
    """'zh' -> 'zh-CN'; None/''/'auto' -> None (detect); anything the model lacks raises UnsupportedLocaleError."""
    if requested is None or requested.strip().lower() in {"", AUTO}:
        return None
    key = requested.strip().lower().replace("_", "-")
    by_lower = {code.lower(): code for code in supported}
    code = by_lower.get(key) or ALIASES.get(key)
    if code is None or code not in supported:
        raise UnsupportedLocaleError(requested, supported)
    return code


def bounded_locale_label(locale: str | None, supported: Sequence[str]) -> str:
    """A metrics label from a closed set: a supported locale, or 'unknown' (never the client's raw string)."""
    return locale if locale is not None and locale in supported else "unknown"
