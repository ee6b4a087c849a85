#!/usr/bin/env python3
"""A local stand-in for a Slack incoming webhook, for the quick start: prints each message it receives
(the headline and the text of its blocks) and answers 200.

usage: slack_standin.py PORT_FILE   (binds 127.0.0.1 on a free port and writes the port to PORT_FILE)
"""
import http.server
import json
import sys


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        lines = [f"[slack] {body.get('text', '')}"]
        for block in body.get("blocks", [])[1:]:
            text = block.get("text", {}).get("text") or " ".join(e.get("text", "") for e in block.get("elements", []))
            lines += [f"[slack]   {line}" for line in text.splitlines()]
        print("\n".join(lines), flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
