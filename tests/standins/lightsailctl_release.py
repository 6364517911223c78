"""A stand-in for the lightsailctl GitHub release on 127.0.0.1: archives and a checksums file.

Laid out as the release's .goreleaser.yaml names them: /v1.0.8/lightsailctl_1.0.8_<os>_<arch>.tar.gz
(the binary at the archive's root, beside LICENSE, NOTICE and README.md) and
/v1.0.8/lightsailctl_1.0.8_checksums.txt (`<sha256>  <name>` lines). The "binary" is the
lightsailctl stand-in (tests/standins/lightsailctl.py). `tamper` corrupts the archives after the
checksums were written, as a changed or truncated download would.
"""

import hashlib
import io
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "1.0.8"
PLUGIN = Path(__file__).with_name("lightsailctl.py")
PLATFORMS = [(os, arch) for os in ("linux", "darwin") for arch in ("amd64", "arm64")]


def archive(binary: str) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, text, mode in (
            ("LICENSE", "Apache License 2.0\n", 0o644),
            ("NOTICE", "lightsailctl\n", 0o644),
            ("README.md", "# lightsailctl\n", 0o644),
            ("lightsailctl", binary, 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text.encode()), mode
            tar.addfile(info, io.BytesIO(text.encode()))
    return data.getvalue()


class Release:
    def __init__(self, root: Path, tamper: bool = False) -> None:
        folder = root / f"v{VERSION}"
        folder.mkdir(parents=True)
        lines = []
        for os_name, arch in PLATFORMS:
            name = f"lightsailctl_{VERSION}_{os_name}_{arch}.tar.gz"
            body = archive(PLUGIN.read_text())
            lines.append(f"{hashlib.sha256(body).hexdigest()}  {name}")
            (folder / name).write_bytes(body[:-8] + b"tampered" if tamper else body)
        (folder / f"lightsailctl_{VERSION}_checksums.txt").write_text("\n".join(lines) + "\n")
        self.requests: list[str] = []
        release = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                release.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Release":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
