import signal, sys
from functools import partial
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer(("0.0.0.0", 3000), partial(SimpleHTTPRequestHandler, directory="/web")).serve_forever()
