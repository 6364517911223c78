"""Gunicorn settings used by every production start: make run, the image, Procfile and app.yaml.

Read with `gunicorn -c gunicorn.conf.py`. The values come from environment variables (HOST, PORT,
WEB_CONCURRENCY, WEB_TIMEOUT, WEB_GRACEFUL_TIMEOUT, LOG_LEVEL, LOG_FORMAT), checked with the
service's other settings in mlservice/config.py: a bad one stops the start with one line naming it.
"""

import os
import shutil
import tempfile

# One BLAS/OpenMP thread per worker: the workers already use every CPU, and numpy's and scipy's
# thread pools on top of them would only compete for the same cores. Set before the app imports
# numpy (they are read once, at load); a value set in the environment is kept.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from gunicorn import glogging  # noqa: E402

from mlservice import logs  # noqa: E402
from mlservice.config import ConfigError, from_environ, server_from_environ  # noqa: E402

try:
    _server = server_from_environ()
    _settings = from_environ()
except ConfigError as error:
    raise SystemExit(f"mlservice cannot start: {error}") from None

# Metrics (mlservice/metrics.py), when METRICS_TOKEN turns them on: each process writes its counts
# to files in this directory and /metrics adds them up, so a scrape reports the whole server
# whichever worker answers it. Made here, not in a server hook, because preload_app imports the
# app, and with it prometheus_client, which reads the variable once, before any hook runs. Fresh
# for each server start, kept across a configuration reload (SIGHUP) of the same master: its name
# ends with the master's pid.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if not _settings["METRICS_TOKEN"]:
    _metrics_dir = ""
elif not _metrics_dir.endswith(f"-{os.getpid()}"):
    try:
        _metrics_dir = tempfile.mkdtemp(prefix="mlservice-metrics-", suffix=f"-{os.getpid()}")
    except OSError as error:
        raise SystemExit(f"mlservice cannot start: no directory for the metrics: {error}") from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

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

# Logs go to stderr, where Docker and every platform collect them, in the service's format
# (LOG_FORMAT): gunicorn's own lines too. No access log: the app writes one line per request
# itself (mlservice/telemetry.py), with its request id and prediction counts.
accesslog = None
errorlog = "-"
loglevel = _server["loglevel"]


class Logger(glogging.Logger):
    def setup(self, cfg):
        super().setup(cfg)
        logs.adopt([self.error_log, self.access_log], _settings["LOG_FORMAT"])


logger_class = Logger


def worker_abort(worker):
    # A worker stuck past `timeout` gets SIGABRT; this runs in it, inside the stuck request, so
    # the line carries that request's id (gunicorn's own "WORKER TIMEOUT" line cannot).
    worker.log.error("Worker timeout: the request in progress is abandoned (pid %s)", worker.pid)


def child_exit(server, worker):
    # A dead worker's in-progress requests leave the sums (prometheus_client's "live" gauges).
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


# Gunicorn's runtime control socket is not used; skip it so the app needs no writable $HOME.
control_socket_disable = True
