"""mitmproxy baseline addon: answer 403 when a request body carries an MIP label.

Searches the raw body for MSIP_Label_ and, for ZIP bodies (OOXML), docProps/custom.xml too,
as docs/peer-bench.md describes. It inspects less than labelgate (no LabelInfo.xml,
no PDF object streams, no CFB), so it is a generous baseline.
"""
import io
import zipfile

from mitmproxy import http

NEEDLE = b"MSIP_Label_"


def labeled(body: bytes) -> bool:
    if NEEDLE in body:
        return True
    if body[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as z:
                return NEEDLE in z.read("docProps/custom.xml")
        except (KeyError, zipfile.BadZipFile, ValueError):
            return False
    return False


def request(flow: http.HTTPFlow) -> None:
    if flow.request.method in ("POST", "PUT", "PATCH") and flow.request.content and labeled(flow.request.content):
        flow.response = http.Response.make(403, b"blocked: labeled upload\n", {"content-type": "text/plain"})
