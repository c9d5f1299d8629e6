"""The error tree in vllm_embed._errors is the whole story: every exception class the
package defines lives there, is drawn in its docstring, and is exported."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import vllm_embed
from vllm_embed import ConfigValueError, RetryPolicy, Timeout, _errors
from vllm_embed.server import ServerSpec, build_command

#: Control flow inside the client; never raised to a caller (named in the docstring).
INTERNAL = {"RetryableStatus", "Renegotiate", "ProtocolError", "Disconnected"}
#: Where errors may be defined besides _errors: beside their store format.
STORE_MODULES = {"vllm_embed.migrate.faiss"}


def _package_modules() -> list[str]:
    names = ["vllm_embed"]
    for info in pkgutil.walk_packages(vllm_embed.__path__, "vllm_embed."):
        names.append(info.name)
    return names


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _package_modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and not issubclass(obj, Warning)  # warnings: see below
                and obj.__module__.startswith("vllm_embed")
            ):
                found[attr] = obj
    return found


def test_every_exception_class_of_the_package_is_drawn_in_the_tree() -> None:
    """A new error class must be drawn in the docstring of vllm_embed/_errors.py (and be a
    VLLMEmbedError, defined there or beside its store format in vllm_embed/migrate/)."""
    doc = _errors.__doc__ or ""
    found = _exception_classes()
    assert set(_errors.__all__) <= set(found)
    for name, cls in found.items():
        if name.startswith("_"):  # private control flow inside one module
            continue
        assert re.search(rf"\b{name}\b", doc), f"draw {name} in the tree in _errors.py"
        if name in INTERNAL:
            continue
        assert issubclass(cls, _errors.VLLMEmbedError), name
        assert cls.__module__ == "vllm_embed._errors" or cls.__module__ in STORE_MODULES, name


def test_the_warnings_are_named_in_the_docstring() -> None:
    for warning in (vllm_embed.ConfigWarning, vllm_embed.UnknownConfigKeyWarning):
        assert warning.__name__ in (_errors.__doc__ or "")


@pytest.mark.parametrize("name", _errors.__all__)
def test_every_error_is_drawn_in_the_docstring_and_exported(name: str) -> None:
    assert re.search(rf"[─ ]{name}\b", _errors.__doc__ or ""), name
    assert getattr(vllm_embed, name) is getattr(_errors, name)
    assert issubclass(getattr(_errors, name), _errors.VLLMEmbedError)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Timeout.coerce(-1),
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(jitter=-1),
        lambda: RetryPolicy(total_timeout=0),
        lambda: build_command(ServerSpec(model="m"), "python"),
        lambda: vllm_embed.EmbeddingClient("http://x.test/v1", encoding="gzip"),  # type: ignore[arg-type]
    ],
    ids=["timeout", "attempts", "jitter", "total_timeout", "server-port", "encoding"],
)
def test_bad_settings_raise_a_named_error(make: object) -> None:
    with pytest.raises(ConfigValueError):
        make()  # type: ignore[operator]
