"""deploy/heroku run for real, its pushes going to a registry on 127.0.0.1 and its Platform API
calls to tests/standins/heroku_api.py's fake (tests/test_deploy_heroku_registry.py,
tests/test_image_stores.py)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "heroku"


def run_deploy_heroku(
    image: str, *, app: str, key: str, registry: str, api_url: str, home: Path, env: dict
) -> subprocess.CompletedProcess:
    """deploy/heroku --image IMAGE --version v1.2.3 with `env` (PATH, DOCKER_HOST) and its docker
    login kept in `home`; its outputs go to home/deploy-output."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--image", image, "--version", "v1.2.3"],
        env={
            **env,
            "HOME": str(home),
            "DOCKER_CONFIG": str(home / "docker"),  # keep the login out of ~/.docker
            "HEROKU_APP": app,
            "HEROKU_API_KEY": key,
            "HEROKU_REGISTRY": registry,
            "HEROKU_REGISTRY_INSECURE": "1",
            "HEROKU_API_URL": api_url,
            "DEPLOY_POLL_SECONDS": "0.1",
            "SMOKE_WAIT": "30",
            "GITHUB_OUTPUT": str(home / "deploy-output"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
