"""Like the app's worker.py: check the settings, then the Celery worker WITH beat (a heartbeat here)."""
import pathlib, signal, sys, time

sys.path.insert(0, "/workspace/api")
from app.settings import check_or_exit  # noqa: E402

check_or_exit("worker")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("worker ready: celery worker --beat", flush=True)
while True:
    print("beat: tick", flush=True)
    time.sleep(30)
