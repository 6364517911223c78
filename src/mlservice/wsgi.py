"""The production entry point, named in gunicorn.conf.py.

A bad setting, contract or model stops the server with one line instead of a traceback, before any
worker starts: there is never a half-alive server.
"""

import gc

from mlservice import create_app
from mlservice.config import ConfigError
from mlservice.contract import ContractError
from mlservice.model import ModelError

try:
    app = create_app()
except (ConfigError, ContractError, ModelError) as error:
    raise SystemExit(f"mlservice cannot start: {error}") from None

# gunicorn imports this module in the master (preload_app) and forks the workers from it. Frozen
# objects are left out of garbage collection, whose passes would otherwise write to every one of
# them and so copy the model's and the libraries' shared pages into each worker (about 60 MiB a
# worker after one large batch).
gc.freeze()
