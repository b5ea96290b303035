#!/usr/bin/env python3
"""A small HTTP cache (GET/HEAD/PUT on /cache/cas/<hex> and /cache/ac/<hex>, kept in memory)
that misbehaves on purpose, for fbfs's remote tests: what nginx will not do.

usage: bad_http_server.py MODE LOG_FILE
  good         answers as a cache should
  wrong-bytes  GET answers 200 with bytes that are not the ones PUT (the last byte flipped)
  flaky        every third request gets a 500, unless the one before it for the same path got
               one (so a client that tries again always gets through); others as `good`
  cut-short    GET promises the whole body in Content-Length and closes after half of it
  stall        every request waits 60 s before answering
  full         every PUT gets 507 Insufficient Storage
  forbidden    every request gets 403 Forbidden
Prints "port N" on its first line once it listens on 127.0.0.1. Each request is appended to
LOG_FILE as "METHOD PATH STATUS". Exits by itself after 300 s, so it never outlives a test run.
"""
import http.server
import sys
import threading
import time

MODE = sys.argv[1]
LOG = sys.argv[2]
store = {}
lock = threading.Lock()
count = [0]
failed_last = set()  # paths whose last request got a 500 from `flaky`


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", length=None, send_body=True):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if send_body and self.command != "HEAD":
            self.wfile.write(body)
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path} {status}\n")

    def misbehave(self):
        with lock:
            count[0] += 1
            nth = count[0]
            again = self.path in failed_last
            failed_last.discard(self.path)
            flaky = MODE == "flaky" and nth % 3 == 0 and not again
            if flaky:
                failed_last.add(self.path)
        if MODE == "stall":
            time.sleep(60)
        if MODE == "forbidden":
            self.answer(403, b"forbidden\n")
            return True
        if flaky:
            self.answer(500, b"flaky\n")
            return True
        return False

    def do_HEAD(self):
        if self.misbehave():
            return
        with lock:
            body = store.get(self.path)
        if body is None:
            self.answer(404, send_body=False)
        else:
            self.answer(200, length=len(body), send_body=False)

    def do_GET(self):
        if self.misbehave():
            return
        with lock:
            body = store.get(self.path)
        if body is None:
            self.answer(404, b"not found\n")
        elif MODE == "wrong-bytes" and "/cas/" in self.path:
            self.answer(200, body[:-1] + bytes([body[-1] ^ 1]) if body else b"x")
        elif MODE == "cut-short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            with open(LOG, "a") as log:
                log.write(f"GET {self.path} 200-cut\n")
            self.close_connection = True
        else:
            self.answer(200, body)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.misbehave():
            return
        if MODE == "full":
            self.answer(507, b"full\n")
            return
        with lock:
            created = self.path not in store
            store[self.path] = body
        self.answer(201 if created else 204)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Timer(300, server.shutdown).start()
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
