"""The production entry point, named in gunicorn.conf.py.

A bad setting, contract or model stops the server with one line instead of a traceback, before any
worker starts: there is never a half-alive server.
"""

import gc

# No garbage collection while the app is built (part of the cold start): building only adds
# objects, and a collection's passes over them would find next to nothing to free.
gc.disable()

from mlservice import create_app  # noqa: E402
from mlservice.config import ConfigError  # noqa: E402
from mlservice.contract import ContractError  # noqa: E402
from mlservice.model import ModelError  # noqa: E402

try:
    app = create_app()
except (ConfigError, ContractError, ModelError) as error:
    raise SystemExit(f"mlservice cannot start: {error}") from None

# gunicorn imports this module in the master (preload_app) and forks the workers from it. Frozen
# objects are left out of garbage collection, whose passes would otherwise write to every one of
# them and so copy the model's and the libraries' shared pages into each worker (about 60 MiB a
# worker after one large batch).
gc.freeze()
gc.enable()
