"""Secret redaction: what never enters a record, a manifest, a log or a report.

:func:`redact` masks URL credentials, token-shaped strings, values of secret-named keys, and any
occurrence of the value of a secret-named environment variable (``HF_TOKEN``, ``*_API_KEY``...);
:func:`find_secret` is the last check before bytes reach disk. Environment variables are never
recorded wholesale.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"

_SECRET_NAME = re.compile(r"(?i)(token|secret|passw|api_?key|access_?key|private_?key|credential|auth|cookie)")
# Parts of names that contain a secret word but hold tokenizer facts or people, never secrets
# (pad_token, max_new_tokens, tokenizer_file, author, GIT_AUTHOR_NAME). They are cut out before
# _SECRET_NAME looks at what is left, so "author_token" is still a secret; "author" must end the
# name or a word, so "Authorization" is not exempt.
_NOT_SECRET_PART = re.compile(
    r"(?i)(tokeniz|tokens|(pad|eos|bos|unk|sep|cls|mask|special|added)_token|token_?id|authors?(?![a-z]))"
)
# Query parameters whose values are secrets although their names say less (SAS and S3 signatures,
# ?key=, ?pwd=); matched against the name's words. Names _SECRET_NAME flags are secrets too.
_SECRET_QUERY_WORDS = frozenset({"sig", "signature", "key", "apikey", "pwd", "pass", "secret", "session", "sessionid", "jsessionid"})


# ...but "tokens" after a credential word is a list of credentials (API_TOKENS, github_tokens).
_SECRET_TOKENS = re.compile(
    r"(?i)(?<![a-z0-9])(api|access|auth|bearer|refresh|session|oauth|secret|bot|personal|service|github|gh|gitlab|hf|hub"
    r"|slack|openai|wandb|mlflow|aws|azure|gcp)[_-]?tokens"
)


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_TOKENS.search(name) or _SECRET_NAME.search(_NOT_SECRET_PART.sub(" ", name)))


def _is_secret_query_name(name: str) -> bool:
    return _is_secret_name(name) or any(w in _SECRET_QUERY_WORDS for w in re.split(r"[^a-z0-9]+", name.lower()))


_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s\"'<>]*")
# Userinfo runs to the LAST "@" before the first "/": a password may itself hold "@", "?" or "#"
# (https://u:p@ss@host -> https://***@host). A "@" in a query before any "/" over-masks; never leaks.
_URL_USERINFO = re.compile(r"(?<=://)[^/]*@")
_URL_PARAM = re.compile(r"([?&;#])([^=&;#]+)=([^&;#]*)")
_SECRET_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._\-]{8,}"),
)


def _redact_url(match: re.Match[str]) -> str:
    url = _URL_USERINFO.sub(REDACTED + "@", match.group(0), count=1)
    return _URL_PARAM.sub(
        lambda m: f"{m[1]}{m[2]}={REDACTED}" if m[3] and _is_secret_query_name(m[2]) else m[0], url
    )


MIN_SECRET_LEN = 6  # shorter env values ("1", "true") are not secrets and would mask everything


def secret_env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{name: value}`` of environment variables whose *name* says they hold a secret."""
    env = os.environ if environ is None else environ
    return {
        k: v for k, v in env.items() if _is_secret_name(k) and len(v.strip()) >= MIN_SECRET_LEN
    }


def _redact_str(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _URL.sub(_redact_url, text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact(obj: Any, *, environ: Mapping[str, str] | None = None) -> Any:
    """A deep copy of *obj* with secrets masked as ``***``.

    Masks: values of secret-named keys (``token``, ``api_key``, ``password``, ``Authorization``...),
    URL credentials (userinfo up to the last ``@`` before the host; query or fragment parameters such
    as ``?token=``, ``sig=``, ``key=``, ``access_token=``), token-shaped strings (``hf_...``, ``sk-...``, ``ghp_...``, AWS keys, ``Bearer ...``) and any
    occurrence of the value of a secret-named environment variable.
    """
    secrets = sorted(secret_env_values(environ).values(), key=len, reverse=True)

    def walk(value: Any, key: str | None) -> Any:
        if key is not None and _is_secret_name(key) and isinstance(value, str) and value:
            return REDACTED
        if isinstance(value, str):
            return _redact_str(value, secrets)
        if isinstance(value, Mapping):
            return {k: walk(v, k if isinstance(k, str) else None) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, key) for v in value]  # items of a secret-named list are secrets too
        return value

    return walk(obj, None)


def find_secret(data: bytes | str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the secret-named environment variable whose value occurs in *data*, else None."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    for name, value in secret_env_values(environ).items():
        if value in text:
            return name
    return None


__all__ = ["REDACTED", "find_secret", "redact", "secret_env_values"]
