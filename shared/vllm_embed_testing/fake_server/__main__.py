"""The fake server's child process: ``python <this file> CONFIG_JSON`` (what
:class:`FakeEmbeddingServer` runs) or ``python -m vllm_embed_testing.fake_server CONFIG_JSON``.

Run by path, the package's parent directory replaces this directory on ``sys.path``, so the
child needs nothing installed (``tools/check_packages.py`` runs it with a bare venv's Python).
"""

import sys
from pathlib import Path

if not __package__:  # run by path, not with -m
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from vllm_embed_testing.fake_server._http import _child_main

_child_main()
