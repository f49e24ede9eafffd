"""Offline, deterministic text primitives for the IFEval checkers: sentences, words, language.

Why not NLTK: the reference implementation needs NLTK's ``punkt`` data, downloaded at run time; on an
offline machine 77 of the 834 official instructions (sentence counts, capital-word counts) crash.
Everything here ships inside PyPI wheels and needs no download.

* Sentences: ``pysbd`` (rule-based Golden-Rule segmenter, English, ``clean=False``). Where it can
  differ from NLTK punkt: punkt learns abbreviations statistically, pysbd uses fixed lists, so rare
  abbreviations ("approx.", "Gen.") and ellipses inside a sentence may split differently; pysbd
  keeps a list item without final punctuation as its own segment when it is on its own line, punkt
  glues consecutive lines together unless a period ends them. Counts near an "at least"/"less than"
  boundary can therefore differ by one from a punkt-based scorer on such texts.
  pysbd also keeps text inside quotes and brackets as one sentence, which neither punkt nor the
  reference splitter does; we mask those characters before segmenting so a quoted or JSON-wrapped
  answer counts its sentences.
* Words (``count_words``): ``\\w+`` runs, exactly as the reference's ``RegexpTokenizer(r"\\w+")``.
* Word tokens for capital-word counting (``word_tokens``): a regex approximation of NLTK's
  ``word_tokenize`` (Treebank): words keep inner hyphens and apostrophes, punctuation is split off,
  but a dotted abbreviation such as ``P.S.`` or ``U.S.A.`` stays one token, as punkt keeps it.
  Differs from Treebank on contractions (``DON'T`` is one token here, two there: both upper, so
  it changes the count by one).
* Language: ``langdetect`` with its own factory seeded with 0, created once; the reference calls
  the unseeded global detector, so the same text can score differently between runs. Text with no
  letters has no detectable language: :func:`detect_language` returns ``None`` and the checkers
  count that as followed, as the reference does.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from cleanroom.errors import DependencyError

_WORD_RE = re.compile(r"\w+")
_TOKEN_RE = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'’]\w+)*|[^\w\s]")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs (the reference's word count)."""
    return len(_WORD_RE.findall(text))


def word_tokens(text: str) -> list[str]:
    """Word tokens for counting all-capital words (see the module docstring for the NLTK gap)."""
    return _TOKEN_RE.findall(text)


@lru_cache(maxsize=1)
def _segmenter():
    try:
        import pysbd  # heavy optional: pysbd
    except ImportError as exc:  # pragma: no cover - pysbd is a core dependency
        raise DependencyError("pysbd is missing; the sentence splitter needs it: pip install 'pysbd>=0.3.4'") from exc
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


_SEG_LOCK = threading.Lock()
_NEUTRAL = str.maketrans({c: "|" for c in "\"“”«»()[]{}"})


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` by pysbd (English rules); segments without a word character dropped."""
    if not text.strip():
        return []
    # pysbd never splits inside quotes or brackets; the reference splitter does. Neutralise them
    # (same length, so the character spans still index the original text).
    masked = text.translate(_NEUTRAL)
    with _SEG_LOCK:  # pysbd keeps per-call state on the segmenter object
        spans = _segmenter().segment(masked)
    segments = [text[span.start : span.end] for span in spans]
    # A segment without a word character (a lone closing quote or brace) is not a sentence.
    return [s for s in segments if _WORD_RE.search(s)]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


_FACTORY_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _language_factory():
    try:
        from langdetect.detector_factory import (  # heavy optional: langdetect
            PROFILES_DIRECTORY,
            DetectorFactory,
        )
    except ImportError as exc:  # pragma: no cover - langdetect is a core dependency
        raise DependencyError(
            "langdetect is missing; language checks need it: pip install 'langdetect>=1.0.9'"
        ) from exc
    factory = DetectorFactory()
    try:
        factory.load_profile(PROFILES_DIRECTORY)
    except Exception as exc:
        raise DependencyError(
            f"langdetect language profiles could not be loaded from {PROFILES_DIRECTORY}: {exc}; "
            "reinstall langdetect (pip install --force-reinstall 'langdetect>=1.0.9')"
        ) from exc
    # Our own factory, seeded: the global one is shared with any other user of langdetect.
    factory.seed = 0
    return factory


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text`` by seeded langdetect; ``None`` when the text has no letters."""
    from langdetect.lang_detect_exception import LangDetectException  # heavy optional: langdetect

    with _FACTORY_LOCK:
        detector = _language_factory().create()
        detector.append(text)
        try:
            return detector.detect()
        except LangDetectException:
            return None
