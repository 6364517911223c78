"""Gunicorn settings used by every production start: make run, the image, Procfile and app.yaml.

Read with `gunicorn -c gunicorn.conf.py`. The values come from environment variables (HOST, PORT,
WEB_CONCURRENCY, WEB_TIMEOUT, WEB_GRACEFUL_TIMEOUT, LOG_LEVEL), checked with the service's other
settings in mlservice/config.py: a bad one stops the start with one line naming it.
"""

import os

# One BLAS/OpenMP thread per worker: the workers already use every CPU, and numpy's and scipy's
# thread pools on top of them would only compete for the same cores. Set before the app imports
# numpy (they are read once, at load); a value set in the environment is kept.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from mlservice.config import ConfigError, server_from_environ  # noqa: E402

try:
    _server = server_from_environ()
except ConfigError as error:
    raise SystemExit(f"mlservice cannot start: {error}") from None

# The app object; create_app() runs once in the master because of preload_app below.
wsgi_app = "mlservice.wsgi:app"

# HOST:PORT; platforms (Heroku, App Engine) set $PORT.
bind = _server["bind"]

# Default: the CPUs this process may use (affinity, container quota) + 1, at most 8.
workers = _server["workers"]

# Load the model once in the master and fork: workers share its memory and a broken model
# stops the server before any worker starts.
preload_app = True

# A request that takes longer than this is stuck; the worker is killed and replaced.
timeout = _server["timeout"]
# On SIGTERM, workers finish in-flight requests for up to this long (under Docker's 10 s stop).
graceful_timeout = _server["graceful_timeout"]
keepalive = 5

# Logs go to stdout/stderr, where Docker and every platform collect them.
accesslog = "-"
errorlog = "-"
loglevel = _server["loglevel"]

# Gunicorn's runtime control socket is not used; skip it so the app needs no writable $HOME.
control_socket_disable = True
