"""`mlservice-server`: gunicorn with gunicorn.conf.py, after a check of its settings.

gunicorn reads WEB_CONCURRENCY when it is imported, before any config file, and a value that is
not a number ends in its traceback. Checking the settings first turns that into one line; the
rest of the start is gunicorn's own (`mlservice-server --workers 2` passes options on).
"""

import sys

from mlservice.config import ConfigError, server_from_environ


def main() -> None:
    try:
        server_from_environ()
    except ConfigError as error:
        sys.exit(f"mlservice cannot start: {error}")
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", "gunicorn.conf.py", *sys.argv[1:]]
    run()
