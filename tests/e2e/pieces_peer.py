#!/usr/bin/env python3
"""Split-upload peers for labelgate's tests: an origin that speaks the resumable protocols as
their services do, and real client libraries that upload through labelgate.

  pieces_peer.py origin DIR        prints the port; serves until killed (plain HTTP):
      Google resumable   POST /upload/drive/v3/files?uploadType=resumable -> Location ...&upload_id=N
                         PUT  <session> Content-Range: bytes a-b/N         -> 308 Range | 200 JSON
      X-Goog protocol    POST /xgoog  X-Goog-Upload-Command: start          -> X-Goog-Upload-URL
                         POST <session> command upload[, finalize] + X-Goog-Upload-Offset
      tus 1.0            OPTIONS/POST/HEAD/PATCH/DELETE /files/ (creation, creation-with-upload,
                         concatenation, termination)
      Content-Range      PUT /dav/NAME Content-Range: bytes a-b/N         -> 202 | 201 JSON
      Azure block blob   PUT /blob/NAME?comp=block&blockid=ID -> 201; PUT ?comp=blocklist (XML) -> 201
      Dropbox            POST /2/files/upload_session/{start,append_v2,finish} (Dropbox-API-Arg)
      GET /_done         JSON list of the files the origin assembled: {"name", "size", "sha256"}
  pieces_peer.py pad SRC DST SIZE  copies the docx SRC to DST with a stored member of random
                                   bytes so that it is about SIZE bytes (its labels untouched)
  pieces_peer.py google PROXY_PORT PORT FILE CHUNK
                                   uploads FILE with google-resumable-media (chunks of CHUNK)
  pieces_peer.py tus PROXY_PORT PORT FILE CHUNK
                                   uploads FILE with tuspy (chunks of CHUNK)
      Both print one JSON line: {"ok": bool, "status": int|None, "sha256": str|None}
"""
import hashlib, io, json, os, random, sys, threading, zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

LOCK = threading.Lock()
SESSIONS = {}   # key -> {"name", "total", "data": bytearray, "have": set of (a, b), "done", "partial"}
DONE = []
BLOCKS = {}     # blob path -> {block id: bytes}
NEXT = [0]


def new_id():
    with LOCK:
        NEXT[0] += 1
        return str(NEXT[0])


def covered(s):
    """Bytes 0..k held contiguously."""
    k = 0
    for a, b in sorted(s["have"]):
        if a > k:
            break
        k = max(k, b)
    return k


def finish(s, name=None):
    data = bytes(s["data"][: s["total"]])
    s["done"] = True
    entry = {"name": name or s.get("name"), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with LOCK:
        DONE.append(entry)
    return entry


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, payload=b"", headers=()):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def base(self):
        return f"http://{self.headers.get('Host')}"

    def put_range(self, s, data):
        cr = self.headers.get("Content-Range")
        if cr is None:  # the whole file in one request
            s["data"], s["have"], s["total"] = bytearray(data), {(0, len(data))}, len(data)
            return True
        unit, _, spec = cr.partition(" ")
        rng, _, total = spec.partition("/")
        if total != "*":
            s["total"] = int(total)
        if rng != "*":
            a, b = (int(x) for x in rng.split("-"))
            if b - a + 1 != len(data):
                return False
            if len(s["data"]) < b + 1:
                s["data"].extend(b"\0" * (b + 1 - len(s["data"])))
            s["data"][a : b + 1] = data
            s["have"].add((a, b + 1))
        return True

    # -- GET / HEAD -------------------------------------------------------------------------------
    def do_GET(self):
        if self.path == "/_done":
            with LOCK:
                return self.reply(200, list(DONE))
        self.reply(404)

    def do_HEAD(self):
        s = SESSIONS.get(urlsplit(self.path).path)
        if s is None:
            return self.reply(404, headers=[("Tus-Resumable", "1.0.0")])
        self.reply(200, headers=[("Tus-Resumable", "1.0.0"), ("Upload-Offset", str(covered(s))),
                                 ("Upload-Length", str(s["total"])), ("Cache-Control", "no-store")])

    def do_OPTIONS(self):
        self.reply(204, headers=[("Tus-Resumable", "1.0.0"), ("Tus-Version", "1.0.0"),
                                 ("Tus-Extension", "creation,creation-with-upload,concatenation,termination")])

    def do_DELETE(self):
        SESSIONS.pop(urlsplit(self.path).path, None)
        self.reply(204, headers=[("Tus-Resumable", "1.0.0")])

    # -- POST -------------------------------------------------------------------------------------
    def do_POST(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        data = self.body()
        if url.path.startswith("/2/files/upload_session/"):
            return self.dropbox(url.path.rsplit("/", 1)[-1], data)
        if self.headers.get("Tus-Resumable"):
            return self.tus_create(url, data)
        cmd = (self.headers.get("X-Goog-Upload-Command") or "").lower()
        if cmd:
            return self.xgoog(url, q, cmd, data)
        if q.get("uploadType") == ["resumable"] and "upload_id" not in q:
            sid = new_id()
            meta = json.loads(data or b"{}")
            total = self.headers.get("X-Upload-Content-Length")
            SESSIONS["g" + sid] = {"name": meta.get("name"), "total": int(total) if total else None,
                                  "data": bytearray(), "have": set(), "done": False}
            return self.reply(200, headers=[("Location", f"{self.base()}{url.path}?uploadType=resumable&upload_id={sid}")])
        self.reply(404)

    def dropbox(self, op, data):
        arg = json.loads(self.headers.get("Dropbox-API-Arg") or "{}")
        if op == "start":
            sid = "dbx" + new_id()
            SESSIONS[sid] = {"name": None, "total": None, "data": bytearray(data), "have": {(0, len(data))}, "done": False}
            return self.reply(200, {"session_id": sid})
        cursor = arg.get("cursor", {})
        s = SESSIONS.get(cursor.get("session_id"))
        if s is None:
            return self.reply(409, {"error_summary": "lookup_failed/not_found/"})
        if cursor.get("offset") != covered(s):
            return self.reply(409, {"error_summary": "lookup_failed/incorrect_offset/", "correct_offset": covered(s)})
        off = cursor["offset"]
        s["data"][off:off + len(data)] = data
        s["have"].add((off, off + len(data)))
        if op == "finish":
            s["total"] = covered(s)
            entry = finish(s, arg.get("commit", {}).get("path", "").rsplit("/", 1)[-1])
            return self.reply(200, {"name": entry["name"], "size": entry["size"], "content_hash": entry["sha256"]})
        self.reply(200, b"null")

    def xgoog(self, url, q, cmd, data):
        if "start" in cmd:
            sid = new_id()
            total = self.headers.get("X-Goog-Upload-Header-Content-Length")
            SESSIONS["x" + sid] = {"name": None, "total": int(total) if total else None, "data": bytearray(), "have": set(), "done": False}
            return self.reply(200, headers=[("X-Goog-Upload-URL", f"{self.base()}{url.path}?upload_id={sid}&upload_protocol=resumable"),
                                            ("X-Goog-Upload-Status", "active")])
        s = SESSIONS.get("x" + q.get("upload_id", [""])[0])
        if s is None:
            return self.reply(404)
        off = int(self.headers.get("X-Goog-Upload-Offset") or 0)
        if off != covered(s):
            return self.reply(400, {"error": "offset mismatch", "expected": covered(s)})
        s["data"][off:off + len(data)] = data
        s["have"].add((off, off + len(data)))
        if "finalize" in cmd:
            s["total"] = covered(s)
            return self.reply(200, finish(s), [("X-Goog-Upload-Status", "final")])
        self.reply(200, headers=[("X-Goog-Upload-Status", "active")])

    def tus_create(self, url, data):
        concat = self.headers.get("Upload-Concat", "")
        sid = new_id()
        path = f"/files/{sid}"
        if concat.startswith("final;"):
            parts = [urlsplit(u).path for u in concat[len("final;"):].split()]
            whole = bytearray()
            for p in parts:
                s = SESSIONS.get(p)
                if s is None or covered(s) < s["total"]:
                    return self.reply(400, {"error": "partial upload not complete"}, [("Tus-Resumable", "1.0.0")])
                whole += s["data"][: s["total"]]
            s = {"name": "concatenation", "total": len(whole), "data": whole, "have": {(0, len(whole))}, "done": False}
            SESSIONS[path] = s
            finish(s)
            return self.reply(201, headers=[("Tus-Resumable", "1.0.0"), ("Location", f"{self.base()}{path}")])
        meta = {}
        for pair in (self.headers.get("Upload-Metadata") or "").split(","):
            if " " in pair.strip():
                import base64
                k, v = pair.strip().split(" ", 1)
                meta[k] = base64.b64decode(v).decode()
        s = {"name": meta.get("filename"), "total": int(self.headers["Upload-Length"]), "data": bytearray(data),
             "have": {(0, len(data))} if data else set(), "done": False, "partial": concat == "partial"}
        SESSIONS[path] = s
        headers = [("Tus-Resumable", "1.0.0"), ("Location", f"{self.base()}{path}"), ("Upload-Offset", str(len(data)))]
        if data and len(data) == s["total"] and not s["partial"]:
            finish(s)
        self.reply(201, headers=headers)

    # -- PUT / PATCH ------------------------------------------------------------------------------
    def do_PATCH(self):
        url = urlsplit(self.path)
        data = self.body()
        if self.headers.get("Tus-Resumable"):
            s = SESSIONS.get(url.path)
            if s is None:
                return self.reply(404, headers=[("Tus-Resumable", "1.0.0")])
            off = int(self.headers.get("Upload-Offset", -1))
            if off != covered(s):
                return self.reply(409, headers=[("Tus-Resumable", "1.0.0")])
            s["data"][off:off + len(data)] = data
            s["have"].add((off, off + len(data)))
            if covered(s) == s["total"] and not s.get("partial"):
                finish(s)
            return self.reply(204, headers=[("Tus-Resumable", "1.0.0"), ("Upload-Offset", str(covered(s)))])
        return self.do_PUT(data)

    def do_PUT(self, data=None):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        if data is None:
            data = self.body()
        if q.get("comp") == ["block"]:
            BLOCKS.setdefault(url.path, {})[q["blockid"][0]] = data
            return self.reply(201)
        if q.get("comp") == ["blocklist"]:
            import xml.etree.ElementTree as ET
            blocks = BLOCKS.get(url.path, {})
            ids = [e.text for e in ET.fromstring(data)]
            if any(i not in blocks for i in ids):
                return self.reply(400, {"error": "InvalidBlockList"})
            whole = b"".join(blocks[i] for i in ids)
            finish({"name": url.path.rsplit("/", 1)[-1], "total": len(whole), "data": whole, "have": set(), "done": False})
            BLOCKS.pop(url.path, None)
            return self.reply(201)
        if "upload_id" in q:
            s = SESSIONS.get("g" + q["upload_id"][0])
        else:
            s = SESSIONS.get(url.path)
            # A path uploaded again from its first byte is a new file.
            if s is None or (s["done"] and (self.headers.get("Content-Range") or "bytes 0-").startswith("bytes 0-")):
                s = SESSIONS[url.path] = {"name": url.path.rsplit("/", 1)[-1], "total": None, "data": bytearray(), "have": set(), "done": False}
        if s is None:
            return self.reply(404)
        if s["done"]:
            return self.reply(200, {"name": s["name"], "size": s["total"]})
        if not self.put_range(s, data):
            return self.reply(400, {"error": "bad range"})
        if s["total"] is not None and covered(s) >= s["total"]:
            return self.reply(201 if "upload_id" not in q else 200, finish(s))
        k = covered(s)
        headers = [("Range", f"bytes=0-{k - 1}")] if k else []
        # Google answers 308 Resume Incomplete; Graph-style stores 202 Accepted.
        self.reply(308 if "upload_id" in q else 202, {"nextExpectedRanges": [f"{k}-"]} if "upload_id" not in q else b"", headers)


def origin(_directory):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def pad(src, dst, size):
    rng = random.Random(12)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        want = max(0, int(size) - os.path.getsize(src))
        zout.writestr(zipfile.ZipInfo("word/media/image99.bin"), rng.randbytes(want), compress_type=zipfile.ZIP_STORED)


def session(proxy_port):
    import requests
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": f"http://127.0.0.1:{proxy_port}", "https": f"http://127.0.0.1:{proxy_port}"}
    return s


def google(proxy_port, port, path, chunk):
    from google.resumable_media.requests import ResumableUpload
    from google.resumable_media import common
    transport = session(proxy_port)
    upload = ResumableUpload(f"http://127.0.0.1:{port}/upload/drive/v3/files?uploadType=resumable", int(chunk))
    out = {"ok": False, "status": None, "sha256": None}
    try:
        with open(path, "rb") as stream:
            upload.initiate(transport, stream, {"name": os.path.basename(path)}, "application/octet-stream")
            while not upload.finished:
                response = upload.transmit_next_chunk(transport)
            out["ok"] = True
            out["sha256"] = response.json().get("sha256")
    except common.InvalidResponse as e:
        out["status"] = e.response.status_code
    print(json.dumps(out), flush=True)


def tus(proxy_port, port, path, chunk):
    # tuspy sends its requests with `requests`, which honours the proxy variables.
    os.environ["HTTP_PROXY"] = os.environ["http_proxy"] = f"http://127.0.0.1:{proxy_port}"
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)
    from tusclient import client
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed
    out = {"ok": False, "status": None, "sha256": None}
    try:
        c = client.TusClient(f"http://127.0.0.1:{port}/files/")
        uploader = c.uploader(file_path=path, chunk_size=int(chunk), metadata={"filename": os.path.basename(path)}, retries=0)
        uploader.upload()
        out["ok"] = True
    except (TusCommunicationError, TusUploadFailed) as e:
        out["status"] = getattr(e, "status_code", None)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"origin": origin, "pad": pad, "google": google, "tus": tus}[cmd](*args)
