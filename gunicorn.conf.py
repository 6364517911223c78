"""Gunicorn settings used by every production start: make run, the image, Procfile and app.yaml.

Read with `gunicorn -c gunicorn.conf.py`; each value can be changed by the environment variable
named next to it.
"""

import os

# The app object; create_app() runs once in the master because of preload_app below.
wsgi_app = "mlservice.wsgi:app"

# Platforms (Heroku, App Engine) tell us the port in $PORT; 8000 everywhere else.
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"

# Requests are short and CPU-bound, so one process per core, plus one to cover I/O waits.
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))

# Load the model once in the master and fork: workers share its memory and a broken model
# stops the server before any worker starts.
preload_app = True

# A request that takes longer than this is stuck; the worker is killed and replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# On SIGTERM, workers finish in-flight requests for up to this long (under Docker's 10 s stop).
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "8"))
keepalive = 5

# Logs go to stdout/stderr, where Docker and every platform collect them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Gunicorn's runtime control socket is not used; skip it so the app needs no writable $HOME.
control_socket_disable = True
