"""A local stand-in for the Hugging Face Hub's HTTP API: serves one folder as a model repo, so
the real ``huggingface_hub`` download code (``HF_ENDPOINT``) fetches an uncached checkpoint
without network. Only what ``snapshot_download`` asks for: repo info, the file tree, and
file heads and contents (optionally slowed, or cut off half-way, to test interruptions)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@contextmanager
def serve_repo(repo_id: str, folder: Path, commit: str = "a" * 40, delay_s: float = 0.0,
               cut_file: str | None = None) -> Iterator[str]:
    """Serve ``folder`` as ``repo_id`` at a local endpoint (yielded).

    :param delay_s: pause before sending each file's contents (two clients overlap).
    :param cut_file: a file whose contents stop half-way (the connection drops).
    """
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _json(self, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, send_body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            prefix = f"/{repo_id}/resolve/"
            name = path[len(prefix):].split("/", 1)[1] if path.startswith(prefix) else ""
            if name not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            data = files[name]
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if send_body:
                time.sleep(delay_s)
                if name == cut_file:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._file(send_body=False)

        def do_GET(self) -> None:
            path = unquote(urlparse(self.path).path)
            if path.startswith(f"/api/models/{repo_id}/revision/"):
                self._json({"id": repo_id, "sha": commit, "siblings": [{"rfilename": n} for n in files]})
            elif path.startswith(f"/api/models/{repo_id}/tree/"):
                self._json([{"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                            for n, d in files.items()])
            else:
                self._file(send_body=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
