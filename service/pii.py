"""Finding personal data in recognised text, written or spoken: phone numbers, Chinese resident ID numbers, bank
card numbers, email addresses and long digit strings. Pure functions over a transcript's units (an English word,
one Chinese character, or a run of other non-space characters); service.redaction masks what they find.

A recogniser writes numbers as it hears them: 一三八零零…, 幺三八… (Mandarin's 1 when reading digits), "one three
eight", "double five", and sometimes as digits. Each run of digit units becomes a digit string, which is checked as
the strictest entity first: a resident ID's check digit and birth date (python-stdnum `stdnum.cn.ric`), a card's
Luhn sum (`stdnum.luhn`), a valid phone number for mainland China, Hong Kong or the US (`phonenumbers`); any other
run of at least `min_digits` digits is a `digit_string`, so an account or order number is masked although it
validates as nothing, while a year or a short quantity (二零二四, "three") is not.

The model also hears a digit as a word that sounds like it (零 as 领, 八 as 把 or 巴, Cantonese 一 as 日, "four" as
"for", "eight" as "at": measured on the bundled model with espeak-ng voices). Such a sound-alike counts as a digit
only inside a run that holds enough real digits, so 一起 and "for one hour" stay text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
import phonenumbers
from stdnum import luhn
from stdnum.cn import ric

from model.text.tokenizer import is_cjk
from service.protocol import EntityKind

# When entities overlap, the more specific one names the merged span.
PRIORITY: tuple[EntityKind, ...] = ("email", "cn_resident_id", "bank_card", "phone_number", "digit_string")
PHONE_REGIONS = ("CN", "HK", "US")  # the served locales' regions: a Cantonese caller may give a mainland number
CARD_DIGITS = range(13, 20)  # ISO/IEC 7812 primary account numbers
RESIDENT_ID_DIGITS = 18  # GB 11643-1999: 17 digits and a check character (0-9 or X)

DIGITS_IN_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS = {  # a unit that is a digit when it stands alone
    **dict.fromkeys("零〇", "0"), **dict.fromkeys("一幺壹", "1"), **dict.fromkeys("二贰貳", "2"),
    **dict.fromkeys("三叁", "3"), **dict.fromkeys("四肆", "4"), **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆陸", "6"), **dict.fromkeys("七柒", "7"), **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖", "9"), **{word: str(digit) for digit, word in enumerate(DIGITS_IN_WORDS)},
}
SOUND_ALIKES = {  # a unit the model writes for a digit it heard; a digit only inside a run of real digits
    **dict.fromkeys("领灵另令铃玲龄靈鈴", "0"), **dict.fromkeys("要腰衣医依日", "1"),
    **dict.fromkeys("两兩而儿耳尔", "2"),
    **dict.fromkeys("散伞", "3"), **dict.fromkeys("似寺死", "4"), **dict.fromkeys("午舞武唔", "5"),
    **dict.fromkeys("溜刘流留", "6"), **dict.fromkeys("其期齐起", "7"), **dict.fromkeys("把吧巴爸", "8"),
    **dict.fromkeys("就久酒救", "9"),
    "oh": "0", "o": "0", "won": "1", "to": "2", "too": "2", "for": "4", "fore": "4", "at": "8", "ate": "8",
}
REPEATS = {"double": 2, "triple": 3}  # "double five" is 55
# Digit words the model ran together into one unit ("sevenone"); no English word is made of digit names only.
JOINED_DIGIT_WORDS = re.compile(f"(?:{'|'.join(DIGITS_IN_WORDS)})+")
CHECK_X = {"x", "叉"}  # a resident ID's check character X, spoken or written after its 17 digits
WRITTEN_DIGITS = re.compile(r"\+?\(?\d[\d\-()]*")  # 13800138000, 138-0013-8000, +1(555)123-4567; not 3.14
WRITTEN_ID = re.compile(r"\d{17}[xX]")
CN_DIGIT = "[零〇一二三四五六七八九幺]"
TLD = r"(?:com|net|org|edu|gov|io|co|cn|hk|uk|us|info|me|come)"  # "dot come": "dot com" as the model heard it
EMAILS = (
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # written, one unit
    re.compile(rf"\b[a-z0-9_]+(?: (?:dot|underscore) [a-z0-9_]+)* at [a-z0-9]+(?: dot [a-z0-9]+)* dot {TLD}\b"),
    re.compile(rf"(?:(?:[a-z0-9_.]+|{CN_DIGIT}) )+(?:艾 特|@) [a-z0-9]+(?: (?:点|點|dot) [a-z0-9]+)+"),
)
# Where the same audio was heard as an email, another hearing of it may break the pattern ("example doubt come"):
# a word, "at", and the few words a domain is said in.
LOOSE_EMAIL = re.compile(r"\b[a-z0-9_]+(?: (?:dot|underscore) [a-z0-9_]+)* (?:at|艾 特) [a-z0-9]+(?: [a-z0-9]+){0,3}")


@dataclass(frozen=True)
class Entity:
    kind: EntityKind
    start: int  # index of its first unit
    stop: int  # one past its last unit


@dataclass(frozen=True)
class PiiOptions:
    min_digits: int = 6  # a digit string this long is masked even if it validates as nothing
    # A trailing digit run this long is masked while it may still grow (a stream's partial): the next partial may
    # complete it into a number, and what was shown cannot be taken back. One digit: a number's first digit is
    # masked too, at the cost of a tag shown for a moment where 一 turns out to begin 一起.
    pending_min_digits: int = 1
    loose_emails: bool = False  # also mask LOOSE_EMAIL (another hearing of audio that held an email)


def split_units(text: str) -> list[tuple[int, int]]:
    """The (start, end) character spans of `text`'s units: every CJK character on its own, and every run of other
    non-space characters (an English word, a written number)."""
    spans, start = [], None
    for index, char in enumerate(text):
        if char.isspace() or is_cjk(char):
            if start is not None:
                spans.append((start, index))
                start = None
            if not char.isspace():
                spans.append((index, index + 1))
        elif start is None:
            start = index
    return spans + ([(start, len(text))] if start is not None else [])


def find_entities(units: Sequence[str], options: PiiOptions = PiiOptions(), open_end: bool = False) -> list[Entity]:
    """The entities among `units`, in order and not overlapping. With `open_end` (a partial hypothesis), a digit run
    that reaches the last unit is a `digit_string` once it holds `pending_min_digits`, since it may still grow into
    a number."""
    lowered = [u.lower() for u in units]
    found = email_entities(lowered, EMAILS + ((LOOSE_EMAIL,) if options.loose_emails else ())) + \
        digit_entities(lowered, options, open_end)
    return merge_overlapping(found)


# ----------------------------------------------------------------------------------------------------- digits


@dataclass(frozen=True)
class DigitUnit:
    digits: str  # what it adds to the run ("" for "double", whose next unit repeats)
    sure: bool  # a digit name or a written digit, not a sound-alike


def digit_unit(units: Sequence[str], index: int) -> DigitUnit | None:
    unit = units[index]
    if unit in DIGITS:
        return DigitUnit(DIGITS[unit], True)
    if WRITTEN_DIGITS.fullmatch(unit) or WRITTEN_ID.fullmatch(unit):
        return DigitUnit(re.sub(r"[^\dxX]", "", unit).upper(), True)
    if JOINED_DIGIT_WORDS.fullmatch(unit):
        return DigitUnit("".join(DIGITS[w] for w in re.findall("|".join(DIGITS_IN_WORDS), unit)), True)
    if unit in REPEATS and index + 1 < len(units) and units[index + 1] in DIGITS:
        return DigitUnit("", True)
    if unit in SOUND_ALIKES:
        return DigitUnit(SOUND_ALIKES[unit], False)
    return None


def digit_runs(units: Sequence[str]) -> list[tuple[int, int]]:
    """Maximal spans of digit units in which real digits are at least two and at least a third of the units (要三八零零
    要三把领领领 is 13800138000 as the model heard it); a span that fails this keeps only its stretches of real
    digits."""
    runs: list[tuple[int, int]] = []
    index = 0
    while index < len(units):
        stop = index
        while stop < len(units) and digit_unit(units, stop) is not None:
            stop += 1
        if stop == index:
            index += 1
            continue
        kinds = [run_unit(units, i) for i in range(index, stop)]
        sure = sum(k.sure for k in kinds)
        runs += [(index, stop)] if sure >= 2 and 3 * sure >= len(kinds) else sure_stretches(kinds, index)
        index = stop
    return runs


def run_unit(units: Sequence[str], index: int) -> DigitUnit:
    """A unit inside a digit run (`digit_runs`), which is a digit unit by construction."""
    unit = digit_unit(units, index)
    assert unit is not None, units[index]
    return unit


def sure_stretches(kinds: list[DigitUnit], offset: int) -> list[tuple[int, int]]:
    stretches, start = [], None
    for position, kind in enumerate(kinds + [DigitUnit("", False)]):
        if kind.sure and start is None:
            start = position
        elif not kind.sure and start is not None:
            stretches.append((offset + start, offset + position))
            start = None
    return stretches


def run_digits(units: Sequence[str], start: int, stop: int) -> str:
    digits = ""
    for index in range(start, stop):
        kind = run_unit(units, index)
        repeat = REPEATS.get(units[index - 1], 1) if index > start else 1
        digits += kind.digits * repeat
    return digits


def digit_entities(units: Sequence[str], options: PiiOptions, open_end: bool) -> list[Entity]:
    entities = []
    for start, stop in digit_runs(units):
        entity = classified(units, start, stop)
        if entity is None:
            count = len(run_digits(units, start, stop))
            at_end = open_end and stop == len(units)
            if count >= options.min_digits or (at_end and count >= options.pending_min_digits):
                entity = Entity("digit_string", start, stop)
        if entity is not None:
            entities.append(entity)
    return entities


def classified(units: Sequence[str], start: int, stop: int) -> Entity | None:
    """The run as a resident ID, card or phone number; sound-alikes at its edges may be dropped to make it one
    (要 in 我要一三八…), and a spoken X after 17 digits completes an ID."""
    for first, last in trimmed(units, start, stop):
        digits = run_digits(units, first, last)
        if len(digits) == RESIDENT_ID_DIGITS - 1 and last < len(units) and units[last] in CHECK_X:
            digits, last = digits + "X", last + 1
        kind = entity_kind(digits)
        if kind is not None:
            return Entity(kind, first, last)
    return None


def trimmed(units: Sequence[str], start: int, stop: int) -> list[tuple[int, int]]:
    first, last = start, stop
    while first < last and not run_unit(units, first).sure:
        first += 1
    while last > first and not run_unit(units, last - 1).sure:
        last -= 1
    return list(dict.fromkeys([(start, stop), (first, stop), (start, last), (first, last)]))


def entity_kind(digits: str) -> EntityKind | None:
    if len(digits) == RESIDENT_ID_DIGITS and ric.is_valid(digits):
        return "cn_resident_id"
    if digits.isdigit() and len(digits) in CARD_DIGITS and luhn.is_valid(digits):
        return "bank_card"
    if digits.isdigit() and is_phone_number(digits):
        return "phone_number"
    return None


def is_phone_number(digits: str) -> bool:
    """A valid number in one of PHONE_REGIONS, written nationally (13800138000) or with its country code
    (8613800138000, 0085291234567)."""
    candidates = [(digits, region) for region in PHONE_REGIONS] + [("+" + digits.removeprefix("00"), None)]
    for number, region in candidates:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


# ----------------------------------------------------------------------------------------------------- emails


def email_entities(units: Sequence[str], patterns: Sequence[re.Pattern]) -> list[Entity]:
    """Emails written (a@b.com) or spoken ("john at example dot com", 一二三艾特qq点com) over the units joined by
    single spaces, each match widened to the units it touches."""
    text, starts, position = " ".join(units), [], 0
    for unit in units:
        starts.append(position)
        position += len(unit) + 1
    entities = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            first = max(i for i, s in enumerate(starts) if s <= match.start())
            last = max(i for i, s in enumerate(starts) if s < match.end())
            entities.append(Entity("email", first, last + 1))
    return entities


def merge_overlapping(entities: list[Entity]) -> list[Entity]:
    merged: list[Entity] = []
    for entity in sorted(entities, key=lambda e: (e.start, PRIORITY.index(e.kind))):
        if merged and entity.start < merged[-1].stop:
            last = merged[-1]
            kind = min(last.kind, entity.kind, key=PRIORITY.index)
            merged[-1] = Entity(kind, last.start, max(last.stop, entity.stop))
        else:
            merged.append(entity)
    return merged
