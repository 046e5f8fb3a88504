#!/usr/bin/env python3
"""Loads a page in headless chromium and reads it twice through the DevTools protocol.

usage: dashboard_probe.py URL SCREENSHOT_PREFIX EXPRESSION [DELAY_S]

Opens URL, waits DELAY_S (default 3), evaluates EXPRESSION (a JavaScript expression whose value
is JSON-serialisable) and saves SCREENSHOT_PREFIX-1.png; waits DELAY_S again, evaluates and
saves SCREENSHOT_PREFIX-2.png. Prints one JSON line: {"first": ..., "second": ...}.
The DevTools websocket is spoken with the standard library only (a client frame is masked,
a server frame is not)."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no chromium on PATH (Debian: apt-get install chromium)")


class DevTools:
    def __init__(self, ws_url):
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", ws_url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                sys.exit("DevTools closed the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            sys.exit(f"DevTools refused the websocket: {head[:200]!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                sys.exit("DevTools closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _frame(self):
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return b0 & 0x0F, b0 & 0x80, self._read(length)

    def _message(self):
        data = b""
        while True:
            opcode, fin, payload = self._frame()
            if opcode in (0x1, 0x0):
                data += payload
                if fin:
                    return json.loads(data)
            # Pings, pongs and binary frames carry nothing for us.

    def call(self, method, **params):
        self.next_id += 1
        body = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        header = bytearray([0x81])
        if len(body) < 126:
            header.append(0x80 | len(body))
        elif len(body) < 1 << 16:
            header.append(0x80 | 126)
            header += len(body).to_bytes(2, "big")
        else:
            header.append(0x80 | 127)
            header += len(body).to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        self.sock.sendall(bytes(header) + mask + masked)
        while True:
            msg = self._message()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    sys.exit(f"{method}: {msg['error']}")
                return msg["result"]


def main():
    url, prefix, expression = sys.argv[1], sys.argv[2], sys.argv[3]
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    profile = tempfile.mkdtemp(prefix="dashboard-probe-")
    browser = subprocess.Popen(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,1100",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        ws = None
        while ws is None and time.time() < deadline:
            line = browser.stderr.readline()
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                ws = found.group(1)
        if ws is None:
            sys.exit("chromium did not start its DevTools endpoint")
        port = re.match(r"ws://[^:]+:(\d+)/", ws).group(1)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(p for p in pages if p.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Page.navigate", url=url)
        results = []
        for i in (1, 2):
            time.sleep(delay)
            value = tools.call("Runtime.evaluate", expression=expression, returnByValue=True)
            results.append(value["result"].get("value"))
            shot = tools.call("Page.captureScreenshot", format="png")
            with open(f"{prefix}-{i}.png", "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        print(json.dumps({"first": results[0], "second": results[1]}))
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
