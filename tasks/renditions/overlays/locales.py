"""What a row's locale says about its text: language, direction, how lines break."""

from __future__ import annotations

RTL_LANGUAGES = {"ar", "he", "iw", "fa", "ur", "ps", "sd", "yi", "dv", "ug", "ckb"}
# Scripts written without spaces between words: a line may break between any two characters.
NO_SPACE_LANGUAGES = {"ja", "zh", "th", "lo", "km", "my"}
# NotoSansCJK-*.ttc faces, by locale.
CJK_FACE = {"ja": 0, "ko": 1, "zh-Hans": 2, "zh-Hant": 3, "zh-HK": 4}


def language_of(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower()


def is_rtl(locale: str) -> bool:
    return language_of(locale) in RTL_LANGUAGES


def cjk_face(locale: str) -> int:
    """The face of the Noto CJK collection for a locale: the glyph forms follow it."""
    parts = locale.replace("_", "-").split("-")
    lang = parts[0].lower()
    if lang == "zh":
        rest = {p.lower() for p in parts[1:]}
        if "hant" in rest or "tw" in rest or "mo" in rest:
            return CJK_FACE["zh-Hant"]
        if "hk" in rest:
            return CJK_FACE["zh-HK"]
        return CJK_FACE["zh-Hans"]
    return CJK_FACE.get(lang, CJK_FACE["ja"])
