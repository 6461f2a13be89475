#!/usr/bin/env python3
"""Builds archives and e-mails around real corpus files with Python's own writers (zipfile,
tarfile, gzip, bz2, lzma, email) and the 7-Zip command line, for labelgate-unpack's tests.

Usage: make_containers.py OUTDIR LABELED UNLABELED LEGACY_DOC PDF

For every container NAME it writes lab_NAME (around LABELED) and unl_NAME (around UNLABELED).
"""
import shutil
import bz2, gzip, io, lzma, os, subprocess, sys, tarfile, zipfile
from email.message import EmailMessage
from email import policy

out, labeled, unlabeled, legacy_doc, pdf = sys.argv[1:6]
os.makedirs(out, exist_ok=True)
CPIO = shutil.which("cpio") or sys.exit("make_containers.py: cpio not found")
AR = shutil.which("ar") or sys.exit("make_containers.py: ar not found")
ZSTD = shutil.which("zstd") or sys.exit("make_containers.py: zstd not found")
SEVEN = shutil.which("7zz") or shutil.which("7z") or sys.exit("make_containers.py: 7-Zip (7zz or 7z) not found")


def read(p):
    with open(p, "rb") as f:
        return f.read()


def zip_of(members, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def tar_of(members, mode="w", fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def eml_with(attachments, subject="quarterly numbers"):
    m = EmailMessage()
    m["From"] = "alice@example.com"
    m["To"] = "bob@example.org"
    m["Subject"] = subject
    m.set_content("see attached\n")
    for name, data, maintype, subtype, cte in attachments:
        if maintype == "message":
            m.add_attachment(data)
        else:
            m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name, cte=cte)
    return m.as_bytes(policy=policy.SMTP)


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


for tag, path in (("lab", labeled), ("unl", unlabeled)):
    doc = read(path)
    docx = "q3 report.docx"
    filler = b"meeting notes\n" * 200
    write(f"{tag}_stored.zip", zip_of([("readme.txt", filler), (f"finance/{docx}", doc)], zipfile.ZIP_STORED))
    write(f"{tag}_deflated.zip", zip_of([("readme.txt", filler), (f"finance/{docx}", doc)]))
    write(f"{tag}_bzip2.zip", zip_of([(docx, doc)], zipfile.ZIP_BZIP2))
    write(f"{tag}_lzma.zip", zip_of([(docx, doc)], zipfile.ZIP_LZMA))
    write(f"{tag}_zip_in_zip.zip", zip_of([("inner.zip", zip_of([(docx, doc)]))]))
    write(f"{tag}_three_deep.zip", zip_of([("a.tar.gz", gzip.compress(tar_of([("b.zip", zip_of([(docx, doc)]))])))]))
    write(f"{tag}.tar", tar_of([("notes.txt", filler), ("x" * 120 + "/" + docx, doc)]))
    write(f"{tag}_gnu.tar", tar_of([("y" * 150 + ".docx", doc)], fmt=tarfile.GNU_FORMAT))
    write(f"{tag}.tar.gz", gzip.compress(tar_of([("notes.txt", filler), (docx, doc)])))
    write(f"{tag}.tar.bz2", bz2.compress(tar_of([(docx, doc)])))
    write(f"{tag}.tar.xz", lzma.compress(tar_of([(docx, doc)])))
    write(f"{tag}.docx.gz", gzip.compress(doc))
    # Two concatenated gzip members are one file to gunzip.
    half = len(doc) // 2
    write(f"{tag}_concatenated.docx.gz", gzip.compress(doc[:half]) + gzip.compress(doc[half:]))
    write(f"{tag}.docx.bz2", bz2.compress(doc))
    write(f"{tag}.docx.xz", lzma.compress(doc))
    zst = lambda data: subprocess.run([ZSTD, "-q", "-c", "-"], input=data, stdout=subprocess.PIPE, check=True).stdout
    write(f"{tag}.tar.zst", zst(tar_of([(docx, doc)])))
    write(f"{tag}.tar.lzma", lzma.compress(tar_of([(docx, doc)]), format=lzma.FORMAT_ALONE))
    # cpio as macOS Archive Utility writes it (odc; .cpgz gzipped) and as Linux tools do (newc).
    work = os.path.join(out, f"work_{tag}")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, docx), "wb") as f:
        f.write(doc)
    for fmt, name in (("odc", f"{tag}.cpio"), ("newc", f"{tag}_newc.cpio")):
        listing = (docx + "\n").encode()
        cp = subprocess.run([CPIO, "-o", "--quiet", "-H", fmt], input=listing, stdout=subprocess.PIPE, check=True, cwd=work).stdout
        write(name, cp)
        if fmt == "odc":
            write(f"{tag}.cpgz", gzip.compress(cp))
    subprocess.run([AR, "rc", os.path.join(out, f"{tag}.a"), docx], check=True, cwd=work)
    shutil.rmtree(work)
    # Two frames (as pzstd writes): one stream to a reader.
    write(f"{tag}_frames.docx.zst", zst(doc[: len(doc) // 3]) + zst(doc[len(doc) // 3 :]))
    write(f"{tag}_base64.eml", eml_with([(docx, doc, "application", "vnd.openxmlformats-officedocument.wordprocessingml.document", "base64")]))
    write(f"{tag}_qp.eml", eml_with([(docx, doc, "application", "octet-stream", "quoted-printable")]))
    inner = eml_with([(docx, doc, "application", "octet-stream", "base64")], subject="fwd")
    write(f"{tag}_rfc822.eml", eml_with([(None, __import__("email").message_from_bytes(inner, policy=policy.default), "message", "rfc822", None)]))
    write(f"{tag}_eml_as_octets.eml", eml_with([("forwarded.eml", inner, "application", "octet-stream", "base64")]))
    subprocess.run([SEVEN, "a", "-bso0", "-bsp0", "-t7z", "-mx=5", "-ms=on", os.path.join(out, f"{tag}.7z"), os.path.abspath(path)] + ([os.path.abspath(pdf)] if tag == "lab" else []), check=True, cwd=out)
    # A 7z behind a stub, as a self-extractor is: 7-Zip finds it by its signature.
    write(f"{tag}_stub.7z.exe", b"MZ" + b"\0" * 4094 + read(os.path.join(out, f"{tag}.7z")))

write("lab_legacy_doc.eml", eml_with([("old.doc", read(legacy_doc), "application", "msword", "base64")]))
write("lab_pdf.eml", eml_with([("perks.pdf", read(pdf), "application", "pdf", "base64")]))
doc = read(labeled)
open(os.path.join(out, "plain.docx"), "wb").write(doc)
subprocess.run([SEVEN, "a", "-bso0", "-bsp0", "-tzip", "-pSECRET", os.path.join(out, "enc_zipcrypto.zip"), "plain.docx"], check=True, cwd=out)
subprocess.run([SEVEN, "a", "-bso0", "-bsp0", "-tzip", "-pSECRET", "-mem=AES256", os.path.join(out, "enc_aes.zip"), "plain.docx"], check=True, cwd=out)
subprocess.run([SEVEN, "a", "-bso0", "-bsp0", "-t7z", "-pSECRET", "-mhe=on", os.path.join(out, "enc_headers.7z"), "plain.docx"], check=True, cwd=out)
subprocess.run([SEVEN, "a", "-bso0", "-bsp0", "-t7z", "-pSECRET", "-mhe=off", os.path.join(out, "enc_content.7z"), "plain.docx"], check=True, cwd=out)
os.remove(os.path.join(out, "plain.docx"))

# A 7z whose LZMA2 coder declares a 4 GiB dictionary (props byte 40): written by 7-Zip with a
# plain header, the props byte patched and both CRCs recomputed, as an attacker would.
import struct, zlib
doc = read(labeled)
open(os.path.join(out, "plain.docx"), "wb").write(doc)
target = os.path.join(out, "huge_dict.7z")
subprocess.run([SEVEN, "a", "-bso0", "-bsp0", "-t7z", "-m0=LZMA2", "-mhc=off", target, "plain.docx"], check=True, cwd=out)
os.remove(os.path.join(out, "plain.docx"))
data = bytearray(read(target))
offset, size = struct.unpack_from("<QQ", data, 12)
header_at = 32 + offset
header = data[header_at:header_at + size]
coder = header.find(bytes([0x21, 0x21, 0x01]))
assert coder >= 0, "LZMA2 coder record not found"
header[coder + 3] = 40
data[header_at:header_at + size] = header
struct.pack_into("<I", data, 28, zlib.crc32(bytes(header)) & 0xFFFFFFFF)
struct.pack_into("<I", data, 8, zlib.crc32(bytes(data[12:32])) & 0xFFFFFFFF)
open(target, "wb").write(bytes(data))
