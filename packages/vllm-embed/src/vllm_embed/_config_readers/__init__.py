"""Readers behind :func:`vllm_embed.load_config`, one small module per job.

- ``_files``: read a TOML / JSON file into a dict (syntax errors with line and column).
- ``_python``: execute a Python config module (by path or dotted name), collect its names.
- ``_sections``: find the app's embedding section inside a larger document.
- ``_expand``: ``${VAR}`` / ``${VAR:-default}`` expansion in string values.
- ``_keys``: map the keys apps use onto EmbedConfig fields; warn about unknown ones.
"""
