#!/usr/bin/env python3
"""Hides real corpus files where a DLP scanner has to dig for them: OOXML embeddings, OLE
packages and altChunks, Word 97 ObjectPool storages, junk prefixed to ZIP and PDF files, PDF
attachments (name tree, annotation, portfolio, nested), owner-password-only PDFs and Office files
encrypted with the default password "VelvetSweatshop", for labelgate-unpack's tests. Built with
zipfile, pikepdf, the qpdf command line, msoffcrypto-tool, and a small compound-file (CFB) writer
and ECMA-376 standard-encryption writer of its own, since no kept package writes either.

Usage: make_hidden.py OUTDIR CORPUSDIR
(run it with the interpreter that scripts/python.sh prints; qpdf must be on PATH)

For every construction NAME it writes lab_NAME (hiding a labeled file) and unl_NAME (the same
construction around an unlabeled file of the same kind); the host file is always unlabeled.
lab_pdf_userpw_aes256.pdf and lab_xlsx_password_agile.xlsx have no unl_ twin. The ev_ pairs
(lab_ev_ID_WHAT, unl_ev_ID_WHAT) keep the evasions of a red-team pass as regressions: odd /EF
keys, deep name trees, lying ZIP directories, zeroed Ole10Native sizes, prefixed ZIPs in
compound-file streams, embedded files reached only through /AF, RichMedia, a Launch action, an
orphan stream or an earlier revision, and attachment filters and lengths that once read as
damage; each hides the labeled or the unlabeled docx. Outputs are
byte-identical from run to run, except the AES-256 PDFs: qpdf draws their file key and salts
from the OS's random source whatever its --static-* test flags say.
"""
import contextlib, datetime, hashlib, io, os, posixpath, random, re, shutil, struct, subprocess
import sys, tempfile, uuid, zipfile, zlib

import msoffcrypto
import olefile
import pikepdf
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

out, corpus = sys.argv[1:3]
os.makedirs(out, exist_ok=True)
QPDF = shutil.which("qpdf") or sys.exit("make_hidden.py: qpdf not found")

L_DOCX, U_DOCX = "lab_caf_identity-baseline-discipline-template.docx", "unl_gc_pco-summary-word.docx"
L_XLSX, U_XLSX = "lab_gc_cloud-guardrails-crosswalk.xlsx", "unl_gc_azuregr.xlsx"
L_PDF, U_PDF = "lab_openchain_simpleqa.pdf", "unl_markitdown_test.pdf"
L_DOC, U_DOC = "lab_kernel-memory_legacy-word.doc", "unl_gc_pco-summary.doc"
U_PPTX = "unl_finos_antitrust-compliance-slide.pptx"

REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
CT_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CT_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CT_DOCX_MAIN = CT_DOCX + ".main+xml"
CT_OLE = "application/vnd.openxmlformats-officedocument.oleObject"
CLSID_PACKAGE = uuid.UUID("0003000C-0000-0000-C000-000000000046").bytes_le  # OLE1 "Package"
CLSID_WORD12 = uuid.UUID("F4754C9B-64F5-4B40-8AF4-679732AC0607").bytes_le  # Word.Document.12
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FIXED_NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def zip_of(members):
    """A deflated ZIP with fixed timestamps, so that it is the same bytes every run."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, ZIP_EPOCH), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Compound File Binary ([MS-CFB]) writer: version 3, 512-byte sectors, mini stream below 4096.

FREESECT, ENDOFCHAIN, FATSECT, DIFSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC, 0xFFFFFFFF
SECTOR, MINI_SECTOR, MINI_CUTOFF = 512, 64, 4096
RED, BLACK = 0, 1


class Storage:
    """A CFB storage: name -> bytes (a stream) or Storage, plus the storage's CLSID."""

    def __init__(self, entries=None, clsid=b"\0" * 16):
        self.entries = dict(entries or {})
        self.clsid = clsid


def cfb_order(name):
    # [MS-CFB] 2.6.4: shorter names first, then code points compared in upper case.
    return (len(name), name.upper())


def cfb_write(root):
    """Serializes a Storage tree into a compound file. Timestamps are left zero."""
    entries = []  # one dict per directory entry, in directory order

    def add(name, node):
        if len(name) > 31 or any(c in name for c in "/\\:!"):
            raise ValueError(f"bad CFB name {name!r}")
        idx = len(entries)
        e = {"name": name, "left": NOSTREAM, "right": NOSTREAM, "child": NOSTREAM, "color": BLACK}
        entries.append(e)
        if isinstance(node, Storage):
            e.update(type=1, clsid=node.clsid, data=b"")
            kids = [add(n, k) for n, k in sorted(node.entries.items(), key=lambda kv: cfb_order(kv[0]))]
            e["child"] = sibling_tree(kids)
        else:
            e.update(type=2, clsid=b"\0" * 16, data=bytes(node))
        return idx

    def sibling_tree(ids):
        # A balanced binary search tree that is also a valid red-black tree: every level is
        # full but maybe the deepest, whose nodes are coloured red when it is not full.
        levels = len(ids).bit_length()
        full = len(ids) == (1 << levels) - 1

        def build(lo, hi, depth):
            if lo >= hi:
                return NOSTREAM
            mid = (lo + hi) // 2
            e = entries[ids[mid]]
            e["left"], e["right"] = build(lo, mid, depth + 1), build(mid + 1, hi, depth + 1)
            e["color"] = RED if not full and depth == levels - 1 else BLACK
            return ids[mid]

        return build(0, len(ids), 0)

    add("Root Entry", root)
    entries[0]["type"] = 5

    # Small streams go to the mini stream (64-byte mini sectors), the others to whole sectors.
    ministream, minifat = bytearray(), []
    big = []  # entries of the large streams, in the order their sectors are laid out
    for e in entries:
        if e["type"] != 2 or not e["data"]:
            e["start"] = ENDOFCHAIN if e["type"] == 2 else 0
            continue
        if len(e["data"]) < MINI_CUTOFF:
            n = -(-len(e["data"]) // MINI_SECTOR)
            e["start"] = len(minifat)
            minifat += list(range(len(minifat) + 1, len(minifat) + n)) + [ENDOFCHAIN]
            ministream += e["data"] + b"\0" * (n * MINI_SECTOR - len(e["data"]))
        else:
            big.append(e)

    def nsect(nbytes):
        return -(-nbytes // SECTOR)

    n_dir = nsect(len(entries) * 128)
    n_minifat = nsect(len(minifat) * 4)
    n_ministream = nsect(len(ministream))
    content = n_dir + n_minifat + n_ministream + sum(nsect(len(e["data"])) for e in big)
    n_fat = n_difat = 0
    while True:  # FAT sectors must also map themselves and the DIFAT sectors
        fat_need = -(-(content + n_fat + n_difat) // (SECTOR // 4))
        difat_need = max(0, -(-(fat_need - 109) // (SECTOR // 4 - 1)))
        if (fat_need, difat_need) == (n_fat, n_difat):
            break
        n_fat, n_difat = fat_need, difat_need

    # Sector order: FAT, DIFAT, directory, mini FAT, mini stream, then each large stream.
    fat = [FATSECT] * n_fat + [DIFSECT] * n_difat

    def chain(nsectors):
        first = len(fat)
        fat.extend(list(range(first + 1, first + nsectors)) + [ENDOFCHAIN])
        return first

    dir_start = chain(n_dir)
    minifat_start = chain(n_minifat) if n_minifat else ENDOFCHAIN
    entries[0]["start"] = chain(n_ministream) if n_ministream else ENDOFCHAIN
    entries[0]["data"] = bytes(len(ministream))  # only its length is written
    for e in big:
        e["start"] = chain(nsect(len(e["data"])))
    fat += [FREESECT] * (n_fat * SECTOR // 4 - len(fat))

    fat_sectors = list(range(n_fat))
    difat_sectors = [n_fat + i for i in range(n_difat)]
    header = struct.pack("<8s16sHHHHH6xIIIIIIIII", bytes.fromhex("D0CF11E0A1B11AE1"), b"\0" * 16,
                         0x003E, 3, 0xFFFE, 9, 6, 0, n_fat, dir_start, 0, MINI_CUTOFF,
                         minifat_start, n_minifat, difat_sectors[0] if n_difat else ENDOFCHAIN, n_difat)
    head_difat = fat_sectors[:109] + [FREESECT] * (109 - min(109, n_fat))
    header += struct.pack("<109I", *head_difat)

    body = bytearray(struct.pack(f"<{len(fat)}I", *fat))
    rest = fat_sectors[109:]
    for i, _ in enumerate(difat_sectors):
        part = rest[i * 127:(i + 1) * 127]
        part += [FREESECT] * (127 - len(part))
        nxt = difat_sectors[i + 1] if i + 1 < n_difat else ENDOFCHAIN
        body += struct.pack("<128I", *part, nxt)
    for e in entries:
        name16 = e["name"].encode("utf-16-le") + b"\0\0"
        body += struct.pack("<64sHBBIII16sIQQIQ", name16, len(name16), e["type"], e["color"],
                            e["left"], e["right"], e["child"], e["clsid"], 0, 0, 0, e["start"],
                            len(e["data"]))
    for _ in range(n_dir * 4 - len(entries)):  # unused entries
        body += struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM,
                            b"\0" * 16, 0, 0, 0, 0, 0)
    body += struct.pack(f"<{len(minifat)}I", *minifat)
    body += b"\xff" * (-len(body) % SECTOR)  # the rest of the mini FAT is FREESECT
    body += ministream + b"\0" * (-len(ministream) % SECTOR)
    for e in big:
        body += e["data"] + b"\0" * (-len(e["data"]) % SECTOR)
    assert len(body) == (n_fat + n_difat + content) * SECTOR
    data = header + bytes(body)
    cfb_check(data, root)
    return data


def cfb_read(data):
    """Reads a whole compound file into a Storage tree (with olefile)."""
    ole = olefile.OleFileIO(io.BytesIO(data))

    def walk(entry, path):
        clsid = uuid.UUID(entry.clsid).bytes_le if entry.clsid else b"\0" * 16
        st = Storage(clsid=clsid)
        for kid in entry.kids:
            if kid.entry_type == olefile.STGTY_STREAM:
                st.entries[kid.name] = ole.openstream(path + [kid.name]).read()
            elif kid.entry_type == olefile.STGTY_STORAGE:
                st.entries[kid.name] = walk(kid, path + [kid.name])
        return st

    return walk(ole.root, [])


def cfb_check(data, root):
    """Reads a compound file back with olefile and compares every stream and storage."""
    def flat(st, path=()):
        for name, node in st.entries.items():
            if isinstance(node, Storage):
                yield path + (name,), node.clsid
                yield from flat(node, path + (name,))
            else:
                yield path + (name,), bytes(node)
    back = cfb_read(data)
    want, got = dict(flat(root)), dict(flat(back))
    want[()], got[()] = root.clsid, back.clsid
    if want != got:
        raise AssertionError(f"CFB read-back differs: {sorted(set(want) ^ set(got))}")


# OLE pieces ([MS-OLEDS]): the CompObj stream, Word's ObjInfo, and the OLE1 Package format.

def compobj(clsid, user_type, clipboard, progid):
    def ansi(s):
        b = s.encode("latin-1") + b"\0"
        return struct.pack("<I", len(b)) + b
    return (struct.pack("<IIi", 0xFFFE0001, 0x00000A03, -1) + clsid + ansi(user_type)
            + (ansi(clipboard) if clipboard else struct.pack("<I", 0)) + ansi(progid)
            + struct.pack("<IIII", 0x71B239F4, 0, 0, 0))


OBJINFO = struct.pack("<HHH", 0x0000, 0x0003, 0x0000)  # [MS-DOC] ODT: embedded, metafile picture


def ole10native(label, data, size=None, tail=True):
    """The \\x01Ole10Native stream Word writes for an embedded file ("Package" object); size
    overrides the leading total-size field, tail=False leaves out the unicode tail."""
    src = "C:\\Users\\alice\\Documents\\" + label
    tmp = "C:\\Users\\alice\\AppData\\Local\\Temp\\" + label
    z = lambda s: s.encode("latin-1") + b"\0"
    body = (struct.pack("<H", 2) + z(label) + z(src) + struct.pack("<HH", 0, 3)
            + struct.pack("<I", len(z(tmp))) + z(tmp) + struct.pack("<I", len(data)) + data)
    for s in (tmp, label, src) if tail else ():  # the unicode tail: length in characters, then UTF-16LE
        body += struct.pack("<I", len(s)) + s.encode("utf-16-le")
    return struct.pack("<I", len(body) if size is None else size) + body


def package_object(label, data):
    """An OLE object storage holding a file the way Word embeds one ("Package", OLE1 native)."""
    return Storage({"\x01Ole10Native": ole10native(label, data),
                    "\x01CompObj": compobj(CLSID_PACKAGE, "OLE Package", None, "Package"),
                    "\x03ObjInfo": OBJINFO}, CLSID_PACKAGE)


# ---------------------------------------------------------------------------------------------
# OOXML: add a part, its relationship and its content type to a package, copying the rest.

def add_relationship(rels, rel_type, target):
    ids = [int(n) for n in re.findall(rb'Id="rId(\d+)"', rels)]
    rid = f"rId{max(ids, default=0) + 1}"
    rel = f'<Relationship Id="{rid}" Type="{rel_type}" Target="{target}"/>'.encode()
    return rels.replace(b"</Relationships>", rel + b"</Relationships>", 1), rid


def add_content_type(types, part, ctype, override=False):
    # A Default for the extension when it has none yet, as Word does; else an Override.
    ext = posixpath.splitext(part)[1][1:]
    m = re.search(rb'<Default Extension="%s" ContentType="([^"]*)"/>' % re.escape(ext.encode()), types, re.I)
    if m and m.group(1).decode() == ctype and not override:
        return types
    if not m and not override:
        tag = f'<Default Extension="{ext}" ContentType="{ctype}"/>'.encode()
        return re.sub(rb"(<Types[^>]*>)", lambda t: t.group(1) + tag, types, count=1)
    tag = f'<Override PartName="/{part}" ContentType="{ctype}"/>'.encode()
    return types.replace(b"</Types>", tag + b"</Types>", 1)


def embed_part(host, part, data, source_part, rel_type, ctype, override=False, edit_source=None):
    """Returns host (a ZIP package) with part added and related from source_part."""
    rels_name = posixpath.join(posixpath.dirname(source_part), "_rels", posixpath.basename(source_part) + ".rels")
    target = posixpath.relpath(part, posixpath.dirname(source_part))
    zin = zipfile.ZipFile(io.BytesIO(host))
    names = zin.namelist()
    members = {n: zin.read(n) for n in names}
    if rels_name not in members:
        names.append(rels_name)
        members[rels_name] = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<Relationships '
                              b'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>')
    members[rels_name], rid = add_relationship(members[rels_name], rel_type, target)
    members["[Content_Types].xml"] = add_content_type(members["[Content_Types].xml"], part, ctype, override)
    if edit_source:
        members[source_part] = edit_source(members[source_part], rid)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in names:  # every member keeps its name, place, date and compression
            info = zin.getinfo(n) if n in zin.NameToInfo else zipfile.ZipInfo(n, ZIP_EPOCH)
            ctype_ = info.compress_type if n in zin.NameToInfo else zipfile.ZIP_DEFLATED
            z.writestr(info, members[n], ctype_)
        z.writestr(zipfile.ZipInfo(part, ZIP_EPOCH), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def insert_altchunk(document, rid):
    # w:altChunk is a block-level child of w:body; the body's own w:sectPr must stay last.
    chunk = f'<w:altChunk r:id="{rid}"/>'.encode()
    end = document.rindex(b"</w:body>")
    sect = document.rfind(b"<w:sectPr", 0, end)
    at = sect if sect > max(document.rfind(b"</w:p>", 0, end), document.rfind(b"</w:tbl>", 0, end)) else end
    return document[:at] + chunk + document[at:]


# ---------------------------------------------------------------------------------------------
# ZIP with junk in front.

def shift_zip_offsets(data, delta):
    """What `zip -A` does after a prefix: move every central-directory offset by delta."""
    data = bytearray(data)
    eocd = data.rindex(b"PK\x05\x06")
    count, cd_size, cd_off = struct.unpack_from("<HII", data, eocd + 10)
    if 0xFFFFFFFF in (cd_size, cd_off) or count == 0xFFFF:
        raise ValueError("zip64 archives are not handled")
    pos = cd_off
    for _ in range(count):
        assert data[pos:pos + 4] == b"PK\x01\x02"
        n, m, k = struct.unpack_from("<HHH", data, pos + 28)
        (local,) = struct.unpack_from("<I", data, pos + 42)
        struct.pack_into("<I", data, pos + 42, local + delta)
        pos += 46 + n + m + k
    struct.pack_into("<I", data, eocd + 16, cd_off + delta)
    return bytes(data)


GIF_1X1 = bytes.fromhex("474946383961010001008000000000" "00ffffff21f90401000000002c00000000"
                        "010001000002024401003b")  # GIF89a, 1x1, one transparent pixel
NOISE_64K = random.Random(64).randbytes(65536)
PREFIXES = {"prefix1": b"\0", "prefixgif": GIF_1X1, "prefix64k": NOISE_64K}


# ---------------------------------------------------------------------------------------------
# PDF: attachments with pikepdf, encryption with the qpdf command line.

def pdf_edit(host, edit):
    with pikepdf.open(io.BytesIO(host)) as pdf:
        edit(pdf)
        buf = io.BytesIO()
        pdf.save(buf, deterministic_id=True)  # /ID from the content, not the clock
        return buf.getvalue()


def filespec(pdf, name, data, mime):
    return pikepdf.AttachedFileSpec(pdf, data, filename=name, mime_type=mime, description=name)


def attach(files):
    def edit(pdf):
        for name, data, mime in files:
            pdf.attachments[name] = filespec(pdf, name, data, mime)
    return edit


def annotate(name, data, mime):
    def edit(pdf):
        annot = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment, Rect=[36, 36, 56, 56],
            FS=filespec(pdf, name, data, mime).obj, Contents=pikepdf.String(name),
            Name=pikepdf.Name.Paperclip, F=4))
        page = pdf.pages[0].obj
        if "/Annots" not in page:
            page.Annots = pikepdf.Array()
        page.Annots.append(annot)
    return edit


def portfolio(files):
    def edit(pdf):
        attach(files)(pdf)
        pdf.Root.Collection = pikepdf.Dictionary(Type=pikepdf.Name.Collection, View=pikepdf.Name.D,
                                                 D=pikepdf.String(files[0][0]))
    return edit


def qpdf_encrypt(src, user, owner, bits, aes=True, general=()):
    """src encrypted by the qpdf command line; --static-id and --static-aes-iv keep RC4 and
    AES-128 output the same every run (AES-256 keys and salts stay random)."""
    with tempfile.TemporaryDirectory() as d:
        i, o = os.path.join(d, "in.pdf"), os.path.join(d, "out.pdf")
        with open(i, "wb") as f:
            f.write(src)
        enc = [] if bits in ("40", "256") else [f"--use-aes={'y' if aes else 'n'}"]
        weak = [] if aes else ["--allow-weak-crypto"]  # qpdf 11 refuses RC4 without it
        cmd = [QPDF, "--static-id", "--static-aes-iv", *weak, *general,
               "--encrypt", user, owner, bits, *enc, "--", i, o]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode not in (0, 3):  # 3: succeeded with warnings
            sys.exit(f"make_hidden.py: {' '.join(cmd)} failed: {r.stderr}")
        return read(o)


# ---------------------------------------------------------------------------------------------
# Office encryption: agile by msoffcrypto-tool, ECMA-376 standard by this script.

class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


@contextlib.contextmanager
def seeded_msoffcrypto(seed):
    """msoffcrypto-tool draws salts and keys from secrets and stamps the CFB with the clock;
    pin both so that its output is the same every run (and no weaker: these are test files)."""
    from msoffcrypto.method import ecma376_agile
    from msoffcrypto.method.container import ecma376_encrypted
    saved = ecma376_agile._random_buffer, ecma376_encrypted.datetime
    ecma376_agile._random_buffer = random.Random(seed).randbytes
    ecma376_encrypted.datetime = _FixedDatetime
    try:
        yield
    finally:
        ecma376_agile._random_buffer, ecma376_encrypted.datetime = saved


def agile_encrypt(package, password, seed):
    buf = io.BytesIO()
    with seeded_msoffcrypto(seed):
        msoffcrypto.OfficeFile(io.BytesIO(package)).encrypt(password, buf)
    return buf.getvalue()


def utf16_prefixed(s):
    # [MS-OFFCRYPTO] 2.1.2 UNICODE-LP-P4: byte length, UTF-16LE, padded to 4 bytes.
    b = s.encode("utf-16-le")
    return struct.pack("<I", len(b)) + b + b"\0" * (-len(b) % 4)


def dataspaces():
    """The \\x06DataSpaces storage Office writes beside an encrypted package ([MS-OFFCRYPTO] 2.1)."""
    v1 = struct.pack("<HH", 1, 0)
    version = utf16_prefixed("Microsoft.Container.DataSpaces") + v1 * 3
    entry = struct.pack("<II", 1, 0) + utf16_prefixed("EncryptedPackage") + utf16_prefixed("StrongEncryptionDataSpace")
    space_map = struct.pack("<III", 8, 1, len(entry) + 4) + entry
    definition = struct.pack("<II", 8, 1) + utf16_prefixed("StrongEncryptionTransform")
    transform_id = utf16_prefixed("{FF9A3F03-56EF-4613-BDD5-5A41C1D07246}")
    primary = (struct.pack("<II", 8 + len(transform_id), 1) + transform_id
               + utf16_prefixed("Microsoft.Container.EncryptionTransform") + v1 * 3
               + struct.pack("<IIII", 0, 0, 0, 4))  # no name, block size 0, cipher mode 0, reserved 4
    return Storage({"Version": version, "DataSpaceMap": space_map,
                    "DataSpaceInfo": Storage({"StrongEncryptionDataSpace": definition}),
                    "TransformInfo": Storage({"StrongEncryptionTransform": Storage({"\x06Primary": primary})})})


def standard_key(password, salt, spins=50000):
    # [MS-OFFCRYPTO] 2.3.4.7: iterated SHA-1, then the CryptDeriveKey expansion, first 16 bytes.
    h = hashlib.sha1(salt + password.encode("utf-16-le")).digest()
    for i in range(spins):
        h = hashlib.sha1(struct.pack("<I", i) + h).digest()
    h = hashlib.sha1(h + struct.pack("<I", 0)).digest()
    x1 = hashlib.sha1(bytes(a ^ 0x36 for a in h.ljust(64, b"\0"))).digest()
    x2 = hashlib.sha1(bytes(a ^ 0x5C for a in h.ljust(64, b"\0"))).digest()
    return (x1 + x2)[:16]


def standard_encrypt(package, password, seed):
    """ECMA-376 standard encryption (AES-128, SHA-1), EncryptionInfo version 4.2."""
    rng = random.Random(seed)
    salt, verifier = rng.randbytes(16), rng.randbytes(16)
    key = standard_key(password, salt)
    ecb = lambda data: Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data)
    flags = 0x04 | 0x20  # fCryptoAPI | fAES
    csp = "Microsoft Enhanced RSA and AES Cryptographic Provider".encode("utf-16-le") + b"\0\0"
    # EncryptionHeader 2.3.2: flags, sizeExtra, AES-128, SHA-1, 128 bits, PROV_RSA_AES, reserved.
    header = struct.pack("<IIIIIIII", flags, 0, 0x660E, 0x8004, 128, 0x18, 0, 0) + csp
    # EncryptionVerifier 2.3.3: the SHA-1 of the verifier, zero-padded to an AES block multiple.
    verifier_blob = (struct.pack("<I", 16) + salt + ecb(verifier) + struct.pack("<I", 20)
                     + ecb(hashlib.sha1(verifier).digest().ljust(32, b"\0")))
    info = struct.pack("<HHII", 4, 2, flags, len(header)) + header + verifier_blob
    encrypted = struct.pack("<Q", len(package)) + ecb(package + b"\0" * (-len(package) % 16))
    return cfb_write(Storage({"EncryptionInfo": info, "EncryptedPackage": encrypted,
                              "\x06DataSpaces": dataspaces()}))


# ---------------------------------------------------------------------------------------------

def src(name):
    return read(os.path.join(corpus, name))


def objectpool_doc(host, name, obj):
    """A Word 97 document with obj (a Storage) added as ObjectPool/name."""
    root = cfb_read(host)
    pool = root.entries.setdefault("ObjectPool", Storage())
    pool.entries[name] = obj
    return cfb_write(root)


def build(tag, docx, xlsx, pdf, doc):
    u_docx, u_xlsx, u_pdf, u_doc, u_pptx = src(U_DOCX), src(U_XLSX), src(U_PDF), src(U_DOC), src(U_PPTX)
    w = lambda name, data: write(f"{tag}_{name}", data)

    # OOXML embeddings.
    w("docx_embedded_xlsx.docx", embed_part(u_docx, "word/embeddings/Microsoft_Excel_Worksheet.xlsx", xlsx,
                                            "word/document.xml", REL + "package", CT_XLSX))
    w("pptx_embedded_docx.pptx", embed_part(u_pptx, "ppt/embeddings/Microsoft_Word_Document.docx", docx,
                                            "ppt/slides/slide1.xml", REL + "package", CT_DOCX))
    ole = cfb_write(package_object("report.docx", docx))
    w("docx_oleobject_native.docx", embed_part(u_docx, "word/embeddings/oleObject1.bin", ole,
                                               "word/document.xml", REL + "oleObject", CT_OLE))
    w("xlsx_oleobject_native.xlsx", embed_part(u_xlsx, "xl/embeddings/oleObject1.bin", ole,
                                               "xl/worksheets/sheet1.xml", REL + "oleObject", CT_OLE))
    w("docx_altchunk.docx", embed_part(u_docx, "word/afchunk.docx", docx, "word/document.xml",
                                       REL + "aFChunk", CT_DOCX_MAIN, override=True, edit_source=insert_altchunk))

    # Word 97 ObjectPool: an OOXML "Package" stream, an OLE1 package, a whole Word 97 storage.
    w("doc_objectpool_package.doc", objectpool_doc(u_doc, "_1234567890", Storage({
        "Package": docx,
        "\x01CompObj": compobj(CLSID_WORD12, "Microsoft Word Document", "MSWordDoc", "Word.Document.12"),
        "\x03ObjInfo": OBJINFO}, CLSID_WORD12)))
    w("doc_objectpool_native.doc", objectpool_doc(u_doc, "_1234567890", package_object("report.docx", docx)))
    embedded = cfb_read(doc)  # keeps its own \x01CompObj and root CLSID (Word.Document.8)
    embedded.entries.setdefault("\x03ObjInfo", OBJINFO)
    w("doc_objectpool_storage.doc", objectpool_doc(u_doc, "_1234567892", embedded))

    # Junk before a ZIP package and before a PDF.
    for prefix, junk in PREFIXES.items():
        w(f"{prefix}_docx.docx", junk + docx)
        w(f"{prefix}_pdf.pdf", junk + pdf)
    w("prefix64k_adjusted_docx.docx", NOISE_64K + shift_zip_offsets(docx, len(NOISE_64K)))

    # PDF attachments, always inside the unlabeled PDF.
    w("pdf_attached_docx.pdf", pdf_edit(u_pdf, attach([("report.docx", docx, CT_DOCX)])))
    w("pdf_annot_docx.pdf", pdf_edit(u_pdf, annotate("report.docx", docx, CT_DOCX)))
    w("pdf_portfolio.pdf", pdf_edit(u_pdf, portfolio([("report.docx", docx, CT_DOCX),
                                                      ("notes.txt", b"meeting notes\n" * 50, "text/plain")])))
    w("pdf_attached_pdf.pdf", pdf_edit(u_pdf, attach([("report.pdf", pdf, "application/pdf")])))
    w("pdf_attached_deep.pdf", pdf_edit(u_pdf, attach([("bundle.zip", zip_of([("q3/report.docx", docx)]),
                                                        "application/zip")])))

    # Owner-password-only PDFs: anyone can open them, so their labels must still be read.
    for name, bits, aes, general in (("rc4_40", "40", False, ()), ("rc4_128", "128", False, ()),
                                     ("aes128", "128", True, ()), ("aes256", "256", True, ()),
                                     ("aes128_objstm", "128", True, ("--object-streams=generate",))):
        w(f"pdf_owner_{name}.pdf", qpdf_encrypt(pdf, "", "owner-secret", bits, aes, general))
    attached = pdf_edit(u_pdf, attach([("report.docx", docx, CT_DOCX)]))
    w("pdf_owner_aes256_attached.pdf", qpdf_encrypt(attached, "", "owner-secret", "256"))

    # Office's default password opens these without asking anyone.
    w("xlsx_velvet_agile.xlsx", agile_encrypt(xlsx, "VelvetSweatshop", f"{tag}-velvet-agile"))
    w("xlsx_velvet_standard.xlsx", standard_encrypt(xlsx, "VelvetSweatshop", f"{tag}-velvet-standard"))


# ---------------------------------------------------------------------------------------------
# Red-team evasions kept as regressions: ev_<ID>_<what>, ID as the red-team pass named it. Each
# carries the docx (labeled or not) in an unlabeled host; PDFs are saved with their streams as
# written (no re-encoding), so that the odd filter, key or length reaches the scanner.

CLSID_PBRUSH = uuid.UUID("0003000A-0000-0000-C000-000000000046").bytes_le  # OLE1 "PBrush"
NOISE_200K = random.Random(200).randbytes(200_000)
Name, Dictionary, Array, String = pikepdf.Name, pikepdf.Dictionary, pikepdf.Array, pikepdf.String


def ole1_object(native, clsid, progid):
    """An OLE1 object storage around a \\x01Ole10Native stream given as bytes (package_object
    is ole1_object(ole10native(label, data), CLSID_PACKAGE, "Package"))."""
    return Storage({"\x01Ole10Native": native, "\x01CompObj": compobj(clsid, "OLE Package", None, progid),
                    "\x03ObjInfo": OBJINFO}, clsid)


def ole_docx(host, ole):
    return embed_part(host, "word/embeddings/oleObject1.bin", ole, "word/document.xml", REL + "oleObject", CT_OLE)


def doc_root_stream(host, name, data):
    """A Word 97 document with one more stream at its root."""
    root = cfb_read(host)
    root.entries[name] = data
    return cfb_write(root)


def zip_comment_fake_eocd(data):
    """The archive's comment is an empty end-of-central-directory record (X31)."""
    cmt = b"PK\x05\x06" + b"\0" * 18
    data = bytearray(data)
    struct.pack_into("<H", data, data.rindex(b"PK\x05\x06") + 20, len(cmt))
    return bytes(data) + cmt


def prefixed_cd_offset(data, prefix, cd_off=None):
    """prefix + data with the EOCD's central-directory offset moved past the prefix (X14, the
    local-header offsets left as they were), or set to cd_off, matching nothing (X13)."""
    data = bytearray(prefix + data)
    eocd = data.rindex(b"PK\x05\x06")
    (old,) = struct.unpack_from("<I", data, eocd + 16)
    struct.pack_into("<I", data, eocd + 16, old + len(prefix) if cd_off is None else cd_off)
    return bytes(data)


def pdf_raw(host, edit):
    """host edited by edit(pdf) and saved with every stream kept as written."""
    with pikepdf.open(io.BytesIO(host)) as pdf:
        edit(pdf)
        buf = io.BytesIO()
        pdf.save(buf, deterministic_id=True, stream_decode_level=pikepdf.StreamDecodeLevel.none,
                 compress_streams=False)
        return buf.getvalue()


def ef_stream(pdf, raw, filt=None, parms=None):
    s = pikepdf.Stream(pdf, b"")
    s.write(raw, filter=filt, decode_parms=parms, type_check=False)
    s.Type = Name.EmbeddedFile
    return s


def ef_filespec(pdf, name, stream, key="/F"):
    return pdf.make_indirect(Dictionary(Type=Name.Filespec, F=String(name), UF=String(name),
                                        EF=Dictionary({key: stream})))


def flate_filespec(pdf, name, data):
    return ef_filespec(pdf, name, ef_stream(pdf, zlib.compress(data), Name.FlateDecode))


def set_embedded(pdf, name, fs):
    pdf.Root.Names = Dictionary(EmbeddedFiles=Dictionary(Names=Array([String(name), fs])))


def attach_raw(name, data, filt=None, parms=None, key="/F"):
    """data (already encoded for filt) attached in the EmbeddedFiles name tree."""
    return lambda pdf: set_embedded(pdf, name, ef_filespec(pdf, name, ef_stream(pdf, data, filt, parms), key))


def kids_chain(name, data, depth):
    """The EmbeddedFiles name tree as a chain of depth /Kids nodes above its one leaf."""
    def edit(pdf):
        node = pdf.make_indirect(Dictionary(Names=Array([String(name), flate_filespec(pdf, name, data)]),
                                            Limits=Array([String(name), String(name)])))
        for _ in range(depth):
            node = pdf.make_indirect(Dictionary(Kids=Array([node]), Limits=Array([String(name), String(name)])))
        pdf.Root.Names = Dictionary(EmbeddedFiles=node)
    return edit


def af_form_xobject(name, data):
    """An associated file (/AF) of a Form XObject in the first page's resources (P20)."""
    def edit(pdf):
        fs = flate_filespec(pdf, name, data)
        fs.AFRelationship = Name.Supplement
        fx = pikepdf.Stream(pdf, b"0 0 m")
        fx.Type, fx.Subtype, fx.BBox, fx.AF = Name.XObject, Name.Form, [0, 0, 1, 1], Array([fs])
        page = pdf.pages[0].obj
        if "/Resources" not in page:
            page.Resources = Dictionary()
        if "/XObject" not in page.Resources:
            page.Resources.XObject = Dictionary()
        page.Resources.XObject.Fx9 = fx
    return edit


def page_annot(**fields):
    def edit(pdf):
        pdf.pages[0].obj.Annots = Array([pdf.make_indirect(Dictionary(Type=Name.Annot, **fields))])
    return edit


def af_link(name, data):  # P21: an associated file of a Link annotation
    def edit(pdf):
        page_annot(Subtype=Name.Link, Rect=[0, 0, 1, 1], AF=Array([flate_filespec(pdf, name, data)]))(pdf)
    return edit


def richmedia(name, data):  # P53
    def edit(pdf):
        content = Dictionary(Assets=Dictionary(Names=Array([String(name), flate_filespec(pdf, name, data)])),
                             Configurations=Array([]))
        page_annot(Subtype=Name.RichMedia, Rect=[0, 0, 50, 50], RichMediaContent=content)(pdf)
    return edit


def launch_action(name, data):  # P31
    def edit(pdf):
        pdf.Root.OpenAction = Dictionary(S=Name.Launch, F=flate_filespec(pdf, name, data))
    return edit


def pieceinfo_stream(data):  # P32: an /EmbeddedFile stream no file specification names
    def edit(pdf):
        s = pdf.make_indirect(ef_stream(pdf, zlib.compress(data), Name.FlateDecode))
        pdf.Root.PieceInfo = Dictionary(X=Dictionary(Private=s))
    return edit


def indirect_filter(name, data):  # P45: /Filter is a reference to a name object
    def edit(pdf):
        s = ef_stream(pdf, zlib.compress(data))
        s.Filter = pdf.make_indirect(Name.FlateDecode)
        set_embedded(pdf, name, ef_filespec(pdf, name, s))
    return edit


def lzw_encode(data):
    """PDF LZWDecode (MSB first, EarlyChange 1), clearing the table when it is full."""
    acc = nbits = 0
    res = bytearray()

    def emit(code, width):
        nonlocal acc, nbits
        acc, nbits = (acc << width) | code, nbits + width
        while nbits >= 8:
            nbits -= 8
            res.append((acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1

    table, nxt, width = {bytes([i]): i for i in range(256)}, 258, 9
    emit(256, width)
    w = b""
    for c in data:
        wc = w + bytes([c])
        if wc in table:
            w = wc
            continue
        emit(table[w], width)
        table[wc], nxt = nxt, nxt + 1
        if nxt + 1 > (1 << width) and width < 12:
            width += 1
        if nxt >= 4095:
            emit(256, width)
            table, nxt, width = {bytes([i]): i for i in range(256)}, 258, 9
        w = bytes([c])
    if w:
        emit(table[w], width)
    emit(257, width)
    if nbits:
        res.append((acc << (8 - nbits)) & 0xFF)
    return bytes(res)


def tiff_predict(data, cols):
    """TIFF predictor 2 (one 8-bit colour): each byte less its left neighbour, rows of cols; the
    last row is padded with NULs, which decoding gives back after the file."""
    out = bytearray()
    for i in range(0, len(data), cols):
        r = data[i:i + cols].ljust(cols, b"\0")
        out += bytes([r[0]]) + bytes((r[j] - r[j - 1]) & 0xFF for j in range(1, cols))
    return bytes(out)


def pdf_incremental_attach(base, name, data):
    """base with an incremental update (classic xref section) that attaches data."""
    with pikepdf.open(io.BytesIO(base)) as pdf:
        (root, gen), size = pdf.Root.objgen, int(pdf.trailer.Size)
        catalog = pdf.Root.unparse(resolved=True).rstrip()
    assert catalog.endswith(b">>") and b"/Names" not in catalog
    comp = zlib.compress(data)
    n = name.encode()
    objs = {size: (0, b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F %d 0 R >> >>" % (n, n, size + 1)),
            size + 1: (0, b"<< /Type /EmbeddedFile /Filter /FlateDecode /Length %d >>\nstream\n" % len(comp)
                       + comp + b"\nendstream"),
            root: (gen, catalog[:-2] + b" /Names << /EmbeddedFiles << /Names [ (%s) %d 0 R ] >> >> >>" % (n, size))}
    return pdf_update(base, objs, root, gen, size + 2)


def pdf_update(base, objs, root, gen, size):
    """base + an incremental update rewriting objs ({number: (generation, body)})."""
    out = bytearray(base if base.endswith(b"\n") else base + b"\n")
    prev = int(re.findall(rb"startxref\s+(\d+)", base)[-1])
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d %d obj\n" % (num, objs[num][0]) + objs[num][1] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n" + b"".join(b"%d 1\n%010d %05d n \n" % (n, offsets[n], objs[n][0]) for n in sorted(objs))
    out += b"trailer\n<< /Size %d /Root %d %d R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, gen, prev, xref)
    return bytes(out)


def pdf_attach_then_remove(base, name, data):
    """Q07: one update attaches data, the next puts the catalog back as it was."""
    once = pdf_incremental_attach(base, name, data)
    with pikepdf.open(io.BytesIO(base)) as pdf:
        (root, gen), size = pdf.Root.objgen, int(pdf.trailer.Size)
        catalog = pdf.Root.unparse(resolved=True)
    return pdf_update(once, {root: (gen, catalog)}, root, gen, size + 2)


def wrong_ef_length(pdf_bytes):
    """Q14: the attachment stream says /Length 10 (its data and endstream stay)."""
    i = pdf_bytes.index(b"/Type /EmbeddedFile")
    j, k = pdf_bytes.rindex(b"<<", 0, i), pdf_bytes.index(b"stream", i)
    return pdf_bytes[:j] + re.sub(rb"/Length \d+", b"/Length 10", pdf_bytes[j:k]) + pdf_bytes[k:]


def build_evasions(tag, docx):
    u_docx, u_pdf, u_doc = src(U_DOCX), src(U_PDF), src(U_DOC)
    w = lambda name, data: write(f"{tag}_ev_{name}", data)
    pdf = lambda edit: pdf_raw(u_pdf, edit)
    name = "report.docx"

    # /EF with only a platform key; a name tree 40 /Kids deep.
    for ident, key in (("P24_ef_unix_key", "/Unix"), ("P25_ef_dos_key", "/DOS"), ("P52_ef_mac_key", "/Mac")):
        w(f"{ident}.pdf", pdf(attach_raw(name, zlib.compress(docx), Name.FlateDecode, key=key)))
    w("Pdepth_040_nametree_kids.pdf", pdf(kids_chain("a.docx", docx, 40)))

    # ZIP directories that lie: a fake empty EOCD as the comment; a 200 KB prefix with only the
    # central directory's offset corrected; a 200 KB prefix with an offset that matches nothing.
    w("X31_zip_comment_fake_eocd.docx", zip_comment_fake_eocd(docx))
    w("X14_prefix_cd_adjusted_only.docx", prefixed_cd_offset(docx, NOISE_200K))
    w("X13_prefix_bad_cd_offset.docx", prefixed_cd_offset(docx, NOISE_200K, 12345))

    # Ole10Native size fields of 0: the total (docx; .doc ObjectPool without the unicode tail),
    # and the raw OLE1 native data of a non-Package class.
    sized0 = lambda tail: ole1_object(ole10native("r.docx", docx, size=0, tail=tail), CLSID_PACKAGE, "Package")
    w("O02_ole10_size0.docx", ole_docx(u_docx, cfb_write(sized0(True))))
    w("O29_doc_objectpool_ole10_odd.doc", objectpool_doc(u_doc, "_1234567891", sized0(False)))
    raw0 = ole1_object(struct.pack("<I", 0) + docx, CLSID_PBRUSH, "PBrush")
    w("O59_rawnative_size0.docx", ole_docx(u_docx, cfb_write(raw0)))

    # A GIF before the ZIP in a compound-file stream: Package in an oleObject, Package in a .doc
    # ObjectPool object, a stream at the root of a .doc.
    w("O72_package_stream_gif_prefixed_docx.docx",
      ole_docx(u_docx, cfb_write(Storage({"Package": GIF_1X1 + docx}, CLSID_WORD12))))
    w("X42_doc_objectpool_package_gif_docx.doc",
      objectpool_doc(u_doc, "_7", Storage({"Package": GIF_1X1 + docx}, CLSID_WORD12)))
    w("X53_doc_root_stream_gif_docx.doc", doc_root_stream(u_doc, "Foo", GIF_1X1 + docx))

    # Embedded files reached other than through the EmbeddedFiles tree or a FileAttachment.
    w("P20_af_xobject.pdf", pdf(af_form_xobject("r.docx", docx)))
    w("P21_af_link_annot.pdf", pdf(af_link("r.docx", docx)))
    w("P53_richmedia_assets.pdf", pdf(richmedia("r.docx", docx)))
    w("P31_launch_action_filespec.pdf", pdf(launch_action("r.docx", docx)))
    w("P32_pieceinfo_stream.pdf", pdf(pieceinfo_stream(docx)))
    w("Q07_stale_revision_attachment_removed.pdf", pdf_attach_then_remove(u_pdf, "r.docx", docx))

    # Attachment streams whose filters or lengths once read as damage (false positives).
    w("P09_lzw.pdf", pdf(attach_raw(name, lzw_encode(docx), Name.LZWDecode)))
    w("P08_flate_tiff_pred2.pdf", pdf(attach_raw(name, zlib.compress(tiff_predict(docx, 7)), Name.FlateDecode,
                                                 Dictionary(Predictor=2, Columns=7))))
    w("P45_indirect_filter_name.pdf", pdf(indirect_filter("r.docx", docx)))
    w("Q14_ef_wrong_length.pdf", wrong_ef_length(pdf(attach_raw("r.docx", zlib.compress(docx), Name.FlateDecode))))


build("lab", src(L_DOCX), src(L_XLSX), src(L_PDF), src(L_DOC))
build("unl", src(U_DOCX), src(U_XLSX), src(U_PDF), src(U_DOC))
# Really protected: no label can be read without the password.
write("lab_pdf_userpw_aes256.pdf", qpdf_encrypt(src(L_PDF), "user-secret", "owner-secret", "256"))
write("lab_xlsx_password_agile.xlsx", agile_encrypt(src(L_XLSX), "user-secret", "lab-password-agile"))
build_evasions("lab", src(L_DOCX))
build_evasions("unl", src(U_DOCX))
