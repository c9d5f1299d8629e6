"""What the telemetry tests share with their fixtures: the fake server's key, model and
dimension."""

from __future__ import annotations

KEY = "sk-telemetry-secret-4f9d"
MODEL = "fake-model"
DIM = 384
