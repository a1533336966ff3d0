import json, signal, sys, time, urllib.error, urllib.request

url = sys.argv[1]
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    started = time.time()
    entry = {"t": round(started * 1000)}
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            body = json.loads(r.read().decode() or "{}")
            entry.update(ok=r.status == 200, version=body.get("version"))
    except urllib.error.HTTPError as e:  # an answer, but not a healthy one (e.g. a broken version)
        entry.update(ok=False, error=f"HTTP {e.code}")
    except Exception as e:  # no answer within the timeout: downtime as a client sees it
        entry.update(ok=False, error=type(e).__name__)
    print(json.dumps(entry), flush=True)
    time.sleep(max(0.0, interval - (time.time() - started)))
