"""Which API key a run sends, decided by the endpoint: a key belongs to its provider.

=========================================  ==========================================
endpoint (``--base-url``)                   key sent
=========================================  ==========================================
any, with ``--api-key KEY``                 KEY
any, with ``--api-key-env NAME``            ``$NAME`` (none if it is unset)
``https://openrouter.ai/...`` (default)     ``$OPENROUTER_API_KEY``
``https://api.openai.com/...``              ``$OPENAI_API_KEY``
anything else (a local server, a proxy)     no key
=========================================  ==========================================

``--api-key`` wins over ``--api-key-env``. The host is compared exactly (``openrouter.ai`` or
a subdomain of it, case and a trailing dot aside), never searched for in the URL, and only over
https: a key read from the environment is never sent in clear text or to a look-alike host
(``evilopenrouter.ai``, ``openrouter.ai.evil.com``, ``api.openai.com@evil.com``, IDN
spellings). The host is the one both Python's URL parser and httpx (which sends the request)
read; where they disagree no key is chosen. A redirect is never followed (the client is built
with httpx's default ``follow_redirects=False``), so the key cannot follow one to another host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from bandit_bench.recording.redaction import Secret

OPENROUTER_ENV = "OPENROUTER_API_KEY"
OPENAI_ENV = "OPENAI_API_KEY"
_PROVIDERS = (("openrouter.ai", OPENROUTER_ENV), ("api.openai.com", OPENAI_ENV))


def _host(base_url: str) -> tuple[str, str]:
    import httpx2

    try:
        parts = urlsplit(base_url)
        host = (parts.hostname or "").lower().rstrip(".")
        sent_to = httpx2.URL(base_url).host.lower().rstrip(".")
    except (ValueError, httpx2.InvalidURL):
        return "", ""
    return (parts.scheme.lower(), host) if host == sent_to else ("", "")


def provider_key_env(base_url: str) -> str | None:
    """The environment variable a provider's endpoint reads by default (None: no default key)."""
    scheme, host = _host(base_url)
    if scheme != "https":
        return None
    for domain, env in _PROVIDERS:
        if host == domain or host.endswith("." + domain):
            return env
    return None


def key_env_for(base_url: str, api_key_env: str | None = None) -> str | None:
    """The variable this endpoint's key is read from: ``--api-key-env`` first, else the provider's."""
    return api_key_env or provider_key_env(base_url)


def select_api_key(
    base_url: str,
    *,
    api_key: str | None = None,
    api_key_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Secret | None:
    """The key to send to ``base_url`` (see the module's table), or None to send none."""
    if api_key:
        return Secret(api_key, "--api-key")
    env = key_env_for(base_url, api_key_env)
    if env is None:
        return None
    value = (os.environ if environ is None else environ).get(env)
    return Secret(value, env) if value else None


def key_problem(key: Secret | None) -> str | None:
    """Why ``key`` cannot go into an HTTP header (None when it can), naming where it came from."""
    if key is None:
        return None
    value = key.reveal()
    where = f"check the variable {key.source}" if key.source.isupper() else f"check {key.source}"
    if value != value.strip():
        return f"the API key has leading or trailing whitespace (a newline?) ({where})"
    if not value.isascii():
        return f"the API key contains a non-ASCII character ({where})"
    if not value.isprintable() or any(c.isspace() for c in value):
        return f"the API key contains a space or a control character ({where})"
    return None


def key_help(base_url: str, api_key_env: str | None = None) -> str:
    """One sentence for hints and errors: what this endpoint reads, and how to give it a key."""
    env = key_env_for(base_url, api_key_env)
    if env is not None:
        return f"export {env}=... (or pass --api-key)"
    return "no key is sent to this endpoint unless one is given: --api-key-env NAME or --api-key"


__all__ = ["key_env_for", "key_help", "key_problem", "provider_key_env", "select_api_key"]
