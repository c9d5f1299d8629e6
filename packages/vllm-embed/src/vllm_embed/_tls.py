"""TLS: the ``verify`` setting as an ``ssl.SSLContext``, and certificate failures named.

``verify`` takes what httpx and the openai SDK take:

- ``True`` (default): the system's trust as Python sees it, in this order:
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` (as httpx and OpenSSL read them), then
  ``REQUESTS_CA_BUNDLE`` (requests' variable, which many deployments already set for
  a private CA), then certifi's bundle;
- a path: a CA bundle file (PEM) or a directory of hashed certificates, for a server
  whose certificate comes from a private CA;
- an ``ssl.SSLContext``: used as it is (client certificates, pinned ciphers);
- ``False``: no verification (never in production; a warning is logged once).

No I/O but reading the CA file; the twins build their ``httpx`` client with the result.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import TypeAlias

from vllm_embed._errors import ConfigValueError, TLSCertificateError

__all__ = ["Verify", "certificate_error", "check_verify", "ssl_context"]

logger = logging.getLogger("vllm_embed")

#: What ``verify=`` accepts.
Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext


def check_verify(verify: object) -> Verify:
    """Validate the ``verify`` setting (a missing CA path fails here, naming it)."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    if isinstance(verify, str | os.PathLike):
        path = Path(os.fspath(verify)).expanduser()
        if not path.exists():
            raise ConfigValueError(
                f"verify={os.fspath(verify)!r}: no such CA file or directory. Pass the path "
                "of the PEM bundle of the CA that signed the server's certificate."
            )
        return str(path)
    raise ConfigValueError(
        "verify must be True, False, the path of a CA bundle (PEM) or an ssl.SSLContext, "
        f"got {type(verify).__name__}"
    )


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """The context for ``verify`` (see the module docstring for the order of lookups)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        logger.warning("TLS certificate verification is off (verify=False)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if verify is True:
        for var, kind in (
            ("SSL_CERT_FILE", "file"),
            ("SSL_CERT_DIR", "dir"),
            ("REQUESTS_CA_BUNDLE", "any"),
        ):
            value = os.environ.get(var, "").strip()
            if value:
                return _context_for(value, kind, origin=f"environment variable {var}")
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    return _context_for(os.fspath(verify), "any", origin="verify=")


def _context_for(path: str, kind: str, *, origin: str) -> ssl.SSLContext:
    is_dir = os.path.isdir(path) if kind == "any" else kind == "dir"
    try:
        if is_dir:
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigValueError(
            f"The CA bundle {path!r} from {origin} could not be loaded ({exc}). "
            "Point it at a PEM file holding the CA certificate."
        ) from None


def certificate_error(exc: BaseException, url: str) -> TLSCertificateError | None:
    """A :class:`TLSCertificateError` when ``exc`` (or what it was raised from) is a
    failed certificate check; None for any other failure."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        reason: str | None = None
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = getattr(cause, "verify_message", None) or str(cause)
        elif "CERTIFICATE_VERIFY_FAILED" in str(cause):
            reason = str(cause)
        if reason is not None:
            return TLSCertificateError(
                f"The TLS certificate of {url} could not be verified ({reason}). If the "
                "server uses a private CA, pass verify='/path/to/ca.pem' (or set "
                "SSL_CERT_FILE to that file); check that base_url uses the host name the "
                "certificate was issued for.",
                url=url,
            )
        cause = cause.__cause__ or cause.__context__
    return None
