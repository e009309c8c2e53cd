#!/usr/bin/env python3
"""Reads the dashboard's rendered DOM (chromium --dump-dom; a file, or stdin) and
prints {"loaded": N, "values": {data-k: text}, "links": {data-k: href},
"scripts": count of <script> elements} as JSON."""
import json, sys
from html.parser import HTMLParser


class Reader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.loaded = 0
        self.values, self.links = {}, {}
        self.scripts = 0
        self.stack = []  # open elements: (tag, data-k or None)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.loaded = int(a.get("data-loaded") or 0)
        if tag == "script":
            self.scripts += 1
        key = a.get("data-k")
        if key is not None:
            self.values.setdefault(key, "")
            if tag == "a":
                self.links[key] = a.get("href", "")
        if tag not in ("br", "img", "input", "meta", "link", "hr", "wbr"):
            self.stack.append((tag, key))

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        for _, key in self.stack:
            if key is not None:
                self.values[key] += data


r = Reader()
r.feed(open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read())
json.dump({"loaded": r.loaded, "values": {k: v.strip() for k, v in r.values.items()}, "links": r.links,
           "scripts": r.scripts}, sys.stdout)
