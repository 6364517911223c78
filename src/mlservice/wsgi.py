"""The production entry point, named in gunicorn.conf.py.

A bad setting or model stops the server with one line instead of a traceback, before any
worker starts: there is never a half-alive server.
"""

from mlservice import create_app
from mlservice.config import ConfigError
from mlservice.model import ModelError

try:
    app = create_app()
except (ConfigError, ModelError) as error:
    raise SystemExit(f"mlservice cannot start: {error}") from None
