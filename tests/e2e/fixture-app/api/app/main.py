"""The api: /health and /items (Caddy strips /api), as `uvicorn app.main:app` would serve them."""
import json, os, pathlib, signal, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from app.settings import check_or_exit  # noqa: E402

check_or_exit("api")
# Like the app's run_startup_tasks (api/app/main.py): `alembic upgrade head` at start-up (a no-op at
# the head), skipped under the tests (TEST_DATABASE_URL); a failure stops the boot.
if not os.environ.get("TEST_DATABASE_URL"):
    import subprocess
    if subprocess.run(["alembic", "upgrade", "head"]).returncode != 0:
        print("api: run_migrations: Error occurred", file=sys.stderr, flush=True)
        sys.exit(1)
here = pathlib.Path(__file__).parent.parent
version = (here / "VERSION").read_text().strip()
# HEALTH "fail-in-production": healthy on EB, failing on EA (a production-only misconfiguration).
healthy = not ((here / "HEALTH").read_text().strip() == "fail-in-production" and os.environ.get("ENVIRONMENT") == "production")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/health", "/api/health"):
            code, body = (200, {"status": "ok", "version": version}) if healthy else (503, {"status": "failing", "version": version})
        elif self.path == "/items":
            code, body = 200, {"items": [], "vault": os.environ["VAULT_PUBLIC_BASE_URL"]}
        else:
            code, body = 404, {"detail": "not found"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
# Like uvicorn: a SIGTERM ends the process promptly (PID 1 ignores it otherwise).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"api {version} listening on 8000 (reload: {'--reload' in sys.argv})", flush=True)
server.serve_forever()
