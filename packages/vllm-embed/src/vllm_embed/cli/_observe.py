"""``--metrics-port`` / ``--otel`` for the long-running commands (``embed``, ``migrate``).

``--metrics-port N`` serves Prometheus' ``/metrics`` (prometheus_client's default registry,
where the run's client records) on ``--metrics-host`` (loopback unless told otherwise) for
the duration of the run. ``--otel`` turns the client's spans on; when the process has no
tracer provider yet, one is set up from the standard ``OTEL_*`` variables
(``OTEL_TRACES_EXPORTER``: ``otlp`` by default, ``console``, ``none`` or any installed
exporter; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``; the exporter reads its own
``OTEL_EXPORTER_OTLP_*``), and flushed when the run ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import click

from vllm_embed._errors import MissingDependencyError
from vllm_embed._telemetry import install_hint

__all__ = ["observability_options", "observing"]

F = TypeVar("F", bound=Callable[..., Any])

SDK_HINT = (
    "--otel needs the OpenTelemetry SDK to export spans. Run: pip install "
    "'vllm-embed[otel]' opentelemetry-sdk (and opentelemetry-exporter-otlp for OTLP)"
)
DEFAULT_SERVICE_NAME = "vllm-embed"


def observability_options(command: F) -> F:
    """The options ``--metrics-port``, ``--metrics-host`` and ``--otel``."""
    for option in reversed(
        (
            click.option(
                "--metrics-port",
                type=click.IntRange(0, 65535),
                help="Serve Prometheus metrics on this port while running "
                "(pip install 'vllm-embed[metrics]').",
            ),
            click.option(
                "--metrics-host",
                default="127.0.0.1",
                show_default=True,
                help="Address for --metrics-port (0.0.0.0: every interface).",
            ),
            click.option(
                "--otel",
                is_flag=True,
                help="OpenTelemetry spans per embed call and request, exported as the "
                "OTEL_* variables say (pip install 'vllm-embed[otel]' opentelemetry-sdk).",
            ),
        )
    ):
        command = option(command)
    return command


@contextmanager
def observing(metrics_port: int | None, metrics_host: str, otel: bool) -> Iterator[dict[str, Any]]:
    """Set up what was asked for; yields the client keyword arguments that record into it."""
    kwargs: dict[str, Any] = {}
    with ExitStack() as stack:
        if otel:
            stack.callback(_setup_tracing())
            kwargs["tracing"] = True
        if metrics_port is not None:
            stack.callback(_serve_metrics(metrics_host, metrics_port))
            kwargs["metrics"] = True
        yield kwargs


def _serve_metrics(host: str, port: int) -> Callable[[], None]:
    try:
        import prometheus_client
    except ImportError as exc:
        raise MissingDependencyError(install_hint("metrics")) from exc
    server, thread = prometheus_client.start_http_server(port, addr=host)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"metrics on http://{shown}:{server.server_port}/metrics", err=True)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def _setup_tracing() -> Callable[[], None]:
    """A tracer provider from the OTEL_* variables, unless the process already has one."""
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise MissingDependencyError(install_hint("otel")) from exc
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return lambda: None  # configured already (e.g. opentelemetry-instrument)
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise MissingDependencyError(SDK_HINT) from exc
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in _exporter_names():
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)

    def stop() -> None:
        provider.shutdown()  # flushes the batch processors

    return stop


def _exporter_names() -> list[str]:
    value = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    names = [n.strip() for n in value.split(",") if n.strip()]
    return [] if "none" in names else names


def _exporter(name: str) -> Any:
    """The span exporter registered under ``name`` (entry point group
    ``opentelemetry_traces_exporter``, as the SDK's own auto-configuration finds them)."""
    from importlib.metadata import entry_points

    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        fix = (
            "Run: pip install opentelemetry-exporter-otlp"
            if name.startswith("otlp")
            else "Install the package that provides it"
        )
        raise MissingDependencyError(
            f"OTEL_TRACES_EXPORTER={name!r}, but no such span exporter is installed. {fix}, "
            "or set OTEL_TRACES_EXPORTER=console (or none)."
        )
    return next(iter(found)).load()()
