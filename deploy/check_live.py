#!/usr/bin/env python3
"""Chats through the nginx configs of deploy/ for real (run by deploy/check.sh).

  python3 deploy/check_live.py NGINX BINARY [NODE_MODULES]

Starts BINARY in demo mode on a free loopback port and, for deploy/nginx/deepchat-proxy.conf and
for the sidecar's frontend config in deploy/kubernetes/sidecar.yaml, an nginx on another free
port in front of it (listen addresses, the upstream address and the document root rewritten to
this machine; nothing else changed). Through each nginx it checks that:
  - a WebSocket upgrade on the chat path reaches the proxy (101) and a reply streams back as
    several frames ending with the stop key;
  - Server-Sent Events (POST with Accept: text/event-stream) arrive while the reply is still
    being written, not all at once at the end (no buffering);
  - the browser's Origin reaches the proxy: a foreign origin is refused with 403.
With NODE_MODULES (playwright-core and deep-chat, as tests/e2e/node_modules has them after
`npm ci`), deploy/check_pages.mjs also opens the pages in headless Chromium and chats: the compose
page (its ws:// URL pointed at the test proxy) and the sidecar's page behind both nginx configs.
Prints `ok:` / `FAIL:` lines like check.py and exits 1 on any failure.
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
failures = 0


def ok(message):
    print(f"ok: {message}", flush=True)


def fail(message):
    global failures
    failures += 1
    print(f"FAIL: {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, head.decode("latin-1"), rest


def ws_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class FrameReader:
    def __init__(self, sock, rest):
        self.sock, self.buf = sock, rest

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def frame(self):
        self._need(2)
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        offset = 2
        if n == 126:
            self._need(4)
            n, offset = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10)
            n, offset = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(offset + n)
        payload, self.buf = self.buf[offset:offset + n], self.buf[offset + n:]
        return opcode, payload


def websocket_chat(port, path, origin, stop_key):
    """Returns (status, text frames received before the stop key)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin}\r\n\r\n").encode())
        status, _, rest = read_head(sock)
        if status != 101:
            return status, []
        request = {"messages": [{"role": "user", "text": "hello through nginx"}]}
        sock.sendall(ws_frame(json.dumps(request)))
        reader, texts = FrameReader(sock, rest), []
        while True:
            opcode, payload = reader.frame()
            if opcode == 0x8:
                break
            if opcode != 0x1:
                continue
            frame = json.loads(payload)
            if frame.get("text") == stop_key:
                return status, texts
            if "error" in frame:
                raise RuntimeError(f"error frame: {frame['error']}")
            texts.append(frame.get("text", ""))
        return status, texts
    finally:
        sock.close()


def sse_chat(port, path, origin):
    """Returns (status, [(seconds since request, event)], seconds until the response ended)."""
    body = json.dumps({"messages": [{"role": "user", "text": "hello over SSE"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        start = time.monotonic()
        sock.sendall((
            f"POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: {origin}\r\n"
            f"Accept: text/event-stream\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
        status, head, data = read_head(sock)
        events, seen = [], 0
        while True:
            found = re.findall(rb"^data: ?(.*)$", data, re.M)
            for event in found[seen:]:
                events.append((time.monotonic() - start, event.decode()))
            seen = len(found)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return status, events, time.monotonic() - start
    finally:
        sock.close()


def start(argv, **kw):
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_nginx(nginx, name, conf_text, tmp):
    prefix = Path(tmp, name)
    (prefix / "logs").mkdir(parents=True)
    (prefix / "site.conf").write_text(conf_text)
    (prefix / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
""")
    return start([nginx, "-p", str(prefix), "-e", str(prefix / "error.log"),
                  "-c", str(prefix / "nginx.conf")]), prefix


def exercise(name, port, chat_path, stop_key):
    origin = f"http://localhost:{port}"
    try:
        status, texts = websocket_chat(port, chat_path, origin, stop_key)
        if status == 101 and len(texts) >= 2 and "".join(texts).strip():
            ok(f"{name}: WebSocket upgrade through nginx (101), reply streamed as {len(texts)} frames "
               "ending with the stop key")
        else:
            fail(f"{name}: WebSocket through nginx: status {status}, {len(texts)} text frames")
    except Exception as err:  # noqa: BLE001 - report whatever broke the exchange
        fail(f"{name}: WebSocket through nginx: {err}")
    try:
        status, events, total = sse_chat(port, chat_path, origin)
        if status != 200 or len(events) < 2:
            fail(f"{name}: SSE through nginx: status {status}, {len(events)} events")
        else:
            # Buffered, every event would arrive in one go when the response ends.
            first, last = events[0][0], events[-1][0]
            if first < total * 0.6 and last - first > 0.1:
                ok(f"{name}: SSE through nginx unbuffered: {len(events)} events, the first after "
                   f"{first:.2f}s of {total:.2f}s")
            else:
                fail(f"{name}: SSE through nginx looks buffered: first of {len(events)} events after "
                     f"{first:.2f}s, response ended after {total:.2f}s")
    except Exception as err:  # noqa: BLE001
        fail(f"{name}: SSE through nginx: {err}")
    try:
        status, _ = websocket_chat(port, chat_path, "https://foreign.example", stop_key)
        if status == 403:
            ok(f"{name}: the browser's Origin reaches the proxy (a foreign origin gets 403)")
        else:
            fail(f"{name}: a foreign Origin through nginx got {status}, expected the proxy's 403: "
                 "is Origin forwarded?")
    except Exception as err:  # noqa: BLE001
        fail(f"{name}: foreign-origin WebSocket through nginx: {err}")


def main():
    global failures
    nginx, binary = sys.argv[1], sys.argv[2]
    node_modules = sys.argv[3] if len(sys.argv) > 3 else None
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    stop_key = re.search(r"--stop-key.*?\[default: ([^\]]+)\]", help_text, re.S).group(1)
    chat_path = re.search(r"--path.*?\[default: ([^\]]+)\]", help_text, re.S).group(1)

    proxy_port = free_port()
    # Fast tokens keep the check short; the reply still spans a good part of a second.
    proxy = start([binary, "--listen", f"127.0.0.1:{proxy_port}", "demo", "--tokens-per-second", "150"])
    procs = [proxy]
    with tempfile.TemporaryDirectory(prefix="deploy-live-") as tmp:
        try:
            if not wait_port(proxy_port, proxy):
                fail(f"the proxy did not start: {proxy.stderr.read()[-400:] if proxy.poll() is not None else ''}")
                return 1
            docroot = Path(tmp, "html")
            docroot.mkdir()
            standalone = (DEPLOY / "nginx" / "deepchat-proxy.conf").read_text()
            sidecar = ""
            for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "sidecar.yaml").read_text()):
                if doc and doc.get("kind") == "ConfigMap" and "default.conf" in doc.get("data", {}):
                    sidecar = doc["data"]["default.conf"]
                    (docroot / "index.html").write_text(doc["data"].get("index.html", ""))
            sites = []
            for name, text, upstream in (
                ("deploy/nginx/deepchat-proxy.conf", standalone, r"server\s+127\.0\.0\.1:\d+;"),
                ("deploy/kubernetes/sidecar.yaml default.conf", sidecar, r"proxy_pass\s+http://127\.0\.0\.1:\d+;"),
            ):
                port = free_port()
                if not re.search(upstream, text):
                    fail(f"{name}: no upstream address to point at the test proxy")
                    continue
                text = re.sub(r"^\s*listen\s+[^;]*;\s*$", "", text, flags=re.M)
                text = re.sub(r"(server\s*\{)", rf"\1\n    listen 127.0.0.1:{port};", text, count=1)
                text = re.sub(upstream, lambda m: re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{proxy_port}",
                                                         m.group(0)), text)
                text = re.sub(r"^(\s*root\s+)[^;]+;", rf"\g<1>{docroot};", text, flags=re.M)
                proc, prefix = run_nginx(nginx, f"site{len(sites)}", text, tmp)
                procs.append(proc)
                if not wait_port(port, proc):
                    log = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
                    fail(f"{name}: nginx did not start: {proc.stderr.read()[-400:] if proc.poll() is not None else ''}{log[-400:]}")
                    continue
                sites.append((name, port))
            for name, port in sites:
                exercise(name, port, chat_path, stop_key)
            if node_modules and sites:
                compose_page = (DEPLOY / "compose" / "index.html").read_text()
                fixed = re.sub(r"ws://localhost:\d+/", f"ws://localhost:{proxy_port}/", compose_page)
                (docroot / "compose.html").write_text(fixed)
                pages = [f"deploy/compose/index.html (straight to the proxy)="
                         f"http://localhost:{sites[0][1]}/compose.html"]
                pages += [f"deploy/kubernetes/sidecar.yaml index.html behind {name}=http://localhost:{port}/"
                          for name, port in sites]
                run = subprocess.run(["node", str(DEPLOY / "check_pages.mjs"), node_modules, *pages],
                                     capture_output=True, text=True, timeout=120)
                print(run.stdout, end="", flush=True)
                failures_seen = run.stdout.count("\nFAIL:") + run.stdout.startswith("FAIL:")
                failures += failures_seen
                if run.returncode != 0 and "FAIL:" not in run.stdout:
                    fail(f"the browser check exited {run.returncode}: {run.stderr.strip()[-600:]}")
        finally:
            for proc in procs:
                stop(proc)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
