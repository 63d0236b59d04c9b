"""Question tokens, lemmas and stopwords, with no model or data download.

Schema linking compares question words with table names, column names and cell values
after lowercasing and lemmatizing both sides with the same functions here, so a lemma
only has to be consistent, not linguistically perfect. The lemmatizer is rule based:
an irregular-form table, then suffix rules for plural nouns and ``-ed`` / ``-ing`` verb
forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Decimal numbers stay one token; every other run of letters, digits and underscores is a
# word; every other non-space character is a token of its own.
_TOKEN = re.compile(r"\d+(?:\.\d+)+|\w+|[^\w\s]")
_WORD = re.compile(r"\w")

STOPWORDS = frozenset("""
a about after all also am an and any are as at be been before being between both but by can
could did do does doing during each either every for from had has have having he her hers him
his how i if in into is it its itself me more most much my no nor not of off on once only or
other our ours out over own please same she should so some such than that the their theirs
them then there these they this those through to too under until up very was we were what
when where which while who whom whose why will with would you your yours s t
""".split())
"""Function words that never link to a schema item on their own."""

_IRREGULAR = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "feet": "foot",
    "teeth": "tooth", "mice": "mouse", "geese": "goose", "wives": "wife", "lives": "life",
    "knives": "knife", "halves": "half", "shelves": "shelf", "wolves": "wolf",
    "thieves": "thief", "leaves": "leaf", "indices": "index", "criteria": "criterion",
    "data": "data", "media": "media", "is": "be", "are": "be", "was": "be", "were": "be",
    "been": "be", "being": "be", "am": "be", "has": "have", "had": "have", "having": "have",
    "does": "do", "did": "do", "done": "do", "doing": "do", "made": "make", "gave": "give",
    "given": "give", "got": "get", "sold": "sell", "bought": "buy", "won": "win", "ran": "run",
    "taught": "teach", "wrote": "write", "written": "write", "took": "take", "taken": "take",
    "held": "hold", "paid": "pay", "spent": "spend", "met": "meet", "began": "begin",
    "begun": "begin", "chose": "choose", "chosen": "choose", "built": "build", "led": "lead",
    "created": "create", "creating": "create",
    "movies": "movie", "cookies": "cookie", "ties": "tie", "lies": "lie", "pies": "pie",
    "calories": "calorie", "rookies": "rookie", "goalies": "goalie", "buses": "bus",
    "statuses": "status", "campuses": "campus", "viruses": "virus", "gases": "gas",
    "bonuses": "bonus", "shoes": "shoe", "toes": "toe", "canoes": "canoe", "quizzes": "quiz",
}

# Words that look inflected but are not (or whose inflection would hurt linking).
_INVARIANT = frozenset("""
always news series species physics mathematics economics analysis basis thesis crisis its
thus plus minus whereas lens yes this his hers ours yours theirs us gas bus during thing
something anything everything nothing king ring string spring wing morning evening ceiling
bring sing sting swing earnings building born red bed need speed feed seed hundred kindred
""".split())

# Stems ending in these unstressed syllables take no silent ``e`` back (opened, ordered).
_NO_E_ENDINGS = ("er", "en", "on", "el", "it", "om")
_VOWELS = frozenset("aeiou")


@dataclass(frozen=True)
class Token:
    """One question token with its character span ``[start, end)`` in the question."""

    text: str
    lower: str
    lemma: str
    start: int
    end: int
    is_word: bool
    """True for tokens with a letter or digit; punctuation never links."""
    is_stopword: bool
    """True for `STOPWORDS` and punctuation."""


def tokenize(text: str) -> list[Token]:
    """Split `text` into word, number and punctuation tokens with lemmas and offsets."""
    tokens = []
    for match in _TOKEN.finditer(text):
        word = match.group()
        lower = word.lower()
        is_word = bool(_WORD.match(word))
        tokens.append(Token(word, lower, lemmatize(lower), match.start(), match.end(), is_word,
                            lower in STOPWORDS or not is_word))
    return tokens


def normalize_phrase(text: str) -> tuple[str, ...]:
    """Return the lemmas of the words in `text`, punctuation dropped.

    >>> normalize_phrase("Singer_IDs, of the Cities")
    ('singer', 'id', 'of', 'the', 'city')
    """
    return tuple(token.lemma for token in tokenize(text.replace("_", " ")) if token.is_word)


def value_key(text: str) -> str:
    """Return the lookup key of a cell value or question span: lowercase words, one space.

    >>> value_key("  St. Louis-Park ")
    'st louis park'
    """
    return " ".join(
        token.lower for token in tokenize(text.replace("_", " ")) if token.is_word
    )


@lru_cache(maxsize=65536)
def lemmatize(word: str) -> str:
    """Return a lemma of one lowercase word (plural nouns and -ed/-ing verb forms).

    >>> [lemmatize(w) for w in ("cities", "classes", "named", "opened", "running", "people")]
    ['city', 'class', 'name', 'open', 'run', 'person']
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _INVARIANT or len(word) <= 2 or not word.isalpha():
        return word
    if word.endswith("ed"):
        return _strip_verb_suffix(word, 2)
    if word.endswith("ing"):
        return _strip_verb_suffix(word, 3)
    return _singular(word)


def _singular(word: str) -> str:
    if word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "oes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _strip_verb_suffix(word: str, length: int) -> str:
    stem = word[:-length]
    if len(stem) < 2 or not any(ch in _VOWELS for ch in stem):
        return word
    if length == 2 and stem.endswith("i"):
        return stem[:-1] + "y"  # studied -> study
    if length == 2 and stem.endswith("e"):
        return stem  # agreed -> agree
    if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz" + "aeiou":
        return stem[:-1]  # stopped -> stop, running -> run
    if _needs_silent_e(stem):
        return stem + "e"  # named -> name, located -> locate
    return stem


def _needs_silent_e(stem: str) -> bool:
    """True for stems ending consonant-vowel-consonant, as in nam(ed), locat(ed)."""
    if len(stem) < 2 or stem.endswith(_NO_E_ENDINGS):
        return False
    last, before = stem[-1], stem[-2]
    if last in _VOWELS or last in "wxy" or before not in _VOWELS:
        return False
    return len(stem) == 2 or stem[-3] not in _VOWELS
