# A minimal OTLP/HTTP sink for bench/obs_load.sh: answers 200 to every export, keeps nothing.
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('content-length', 0)); self.rfile.read(n)
        self.send_response(200); self.send_header('content-type','application/x-protobuf'); self.send_header('content-length','0'); self.end_headers()
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
S(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
