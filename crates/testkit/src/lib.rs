//! Fixture builders: ZIP/OOXML packages, PDFs and compound files written byte by byte, so tests
//! can produce exactly the structural tricks label-formats.md warns about, and benches can
//! generate large files of a known shape. Test support only: builders panic on I/O errors.

use flate2::write::{DeflateEncoder, ZlibEncoder};
use flate2::Compression;
use std::io::Write;

pub const GUID_A: &str = "f42aa342-8706-4288-bd11-ebb85995028c";
pub const GUID_B: &str = "87867195-f2b8-4ac2-b0b6-6bb73cb33afc";
pub const SITE_MS: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SITE_OTHER: &str = "cb46c030-1825-4e81-a295-151c039dbf02";

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One ZIP entry and the ways its local header may lie.
#[derive(Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    pub deflate: bool,
    pub local_name: Option<Vec<u8>>,
    pub local_method: Option<u16>,
    pub data_descriptor: bool,
    pub zip64: bool,
    pub encrypted: bool,
}

impl Entry {
    pub fn new(name: &str, data: impl AsRef<[u8]>) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            data: data.as_ref().to_vec(),
            deflate: true,
            local_name: None,
            local_method: None,
            data_descriptor: false,
            zip64: false,
            encrypted: false,
        }
    }
    pub fn stored(mut self) -> Entry {
        self.deflate = false;
        self
    }
}

#[derive(Default, Clone)]
pub struct ZipOptions {
    pub prefix: Vec<u8>,
    pub comment: Vec<u8>,
    pub zip64_end: bool,
}

pub fn build_zip(entries: &[Entry], opts: &ZipOptions) -> Vec<u8> {
    let mut out = opts.prefix.clone();
    let base = out.len() as u64;
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u64 - base;
        let payload = if e.deflate { deflate(&e.data) } else { e.data.clone() };
        let crc = crc32fast::hash(&e.data);
        let method: u16 = if e.deflate { 8 } else { 0 };
        let mut flags: u16 = 0x0800;
        if e.data_descriptor {
            flags |= 8;
        }
        if e.encrypted {
            flags |= 1;
        }
        let local_name = e.local_name.clone().unwrap_or_else(|| e.name.clone());
        let (csize, usize_) = (payload.len() as u64, e.data.len() as u64);
        // Local header.
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&(if e.zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&e.local_method.unwrap_or(method).to_le_bytes());
        out.extend_from_slice(&[0, 0, 0x21, 0]);
        let mut local_extra = Vec::new();
        if e.data_descriptor {
            out.extend_from_slice(&[0; 12]);
        } else if e.zip64 {
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            local_extra.extend_from_slice(&1u16.to_le_bytes());
            local_extra.extend_from_slice(&16u16.to_le_bytes());
            local_extra.extend_from_slice(&usize_.to_le_bytes());
            local_extra.extend_from_slice(&csize.to_le_bytes());
        } else {
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(csize as u32).to_le_bytes());
            out.extend_from_slice(&(usize_ as u32).to_le_bytes());
        }
        out.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(local_extra.len() as u16).to_le_bytes());
        out.extend_from_slice(&local_name);
        out.extend_from_slice(&local_extra);
        out.extend_from_slice(&payload);
        if e.data_descriptor {
            out.extend_from_slice(b"PK\x07\x08");
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(csize as u32).to_le_bytes());
            out.extend_from_slice(&(usize_ as u32).to_le_bytes());
        }
        // Central directory header.
        let mut extra = Vec::new();
        if e.zip64 {
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&24u16.to_le_bytes());
            extra.extend_from_slice(&usize_.to_le_bytes());
            extra.extend_from_slice(&csize.to_le_bytes());
            extra.extend_from_slice(&offset.to_le_bytes());
        }
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 3]);
        central.extend_from_slice(&(if e.zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        central.extend_from_slice(&flags.to_le_bytes());
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        if e.zip64 {
            central.extend_from_slice(&u32::MAX.to_le_bytes());
            central.extend_from_slice(&u32::MAX.to_le_bytes());
        } else {
            central.extend_from_slice(&(csize as u32).to_le_bytes());
            central.extend_from_slice(&(usize_ as u32).to_le_bytes());
        }
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&(if e.zip64 { u32::MAX } else { offset as u32 }).to_le_bytes());
        central.extend_from_slice(&e.name);
        central.extend_from_slice(&extra);
    }
    let cd_offset = out.len() as u64 - base;
    out.extend_from_slice(&central);
    let count = entries.len() as u64;
    if opts.zip64_end {
        let z64 = out.len() as u64 - base;
        out.extend_from_slice(b"PK\x06\x06");
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&(central.len() as u64).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(b"PK\x06\x07");
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&z64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    let c16 = if opts.zip64_end { 0xFFFF } else { count as u16 };
    out.extend_from_slice(&c16.to_le_bytes());
    out.extend_from_slice(&c16.to_le_bytes());
    out.extend_from_slice(&(if opts.zip64_end { u32::MAX } else { central.len() as u32 }).to_le_bytes());
    out.extend_from_slice(&(if opts.zip64_end { u32::MAX } else { cd_offset as u32 }).to_le_bytes());
    out.extend_from_slice(&(opts.comment.len() as u16).to_le_bytes());
    out.extend_from_slice(&opts.comment);
    out
}

pub const CT_DOCX: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/docProps/custom.xml" ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml"/><Override PartName="/docMetadata/LabelInfo.xml" ContentType="application/vnd.ms-office.classificationlabels+xml"/></Types>"#;

pub fn rels(custom: Option<&str>, labelinfo: Option<&str>) -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>"#,
    );
    if let Some(c) = custom {
        s.push_str(&format!(r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties" Target="{c}"/>"#));
    }
    if let Some(l) = labelinfo {
        s.push_str(&format!(r#"<Relationship Id="rId3" Type="http://schemas.microsoft.com/office/2020/02/relationships/classificationlabels" Target="{l}"/>"#));
    }
    s.push_str("</Relationships>");
    s
}

/// `docProps/custom.xml` with the Office key set for each (guid, site, enabled).
pub fn custom_xml(labels: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">"#,
    );
    let mut pid = 2;
    for (guid, site, enabled) in labels {
        for (attr, value) in [
            ("Enabled", *enabled),
            ("SetDate", "2024-06-27T06:52:38Z"),
            ("Method", "Standard"),
            ("Name", "General"),
            ("SiteId", *site),
            ("ContentBits", "0"),
        ] {
            s.push_str(&format!(r#"<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="{pid}" name="MSIP_Label_{guid}_{attr}"><vt:lpwstr>{value}</vt:lpwstr></property>"#));
            pid += 1;
        }
    }
    s.push_str("</Properties>");
    s
}

/// `docMetadata/LabelInfo.xml` with (guid, site, enabled, removed) elements.
pub fn labelinfo_xml(labels: &[(&str, &str, &str, &str)]) -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="utf-8" standalone="yes"?><clbl:labelList xmlns:clbl="http://schemas.microsoft.com/office/2020/mipLabelMetadata">"#,
    );
    for (guid, site, enabled, removed) in labels {
        let method = if *removed == "1" { "" } else { "Standard" };
        s.push_str(&format!(
            r#"<clbl:label id="{{{guid}}}" enabled="{enabled}" method="{method}" siteId="{{{site}}}" removed="{removed}" />"#
        ));
    }
    s.push_str("</clbl:labelList>");
    s
}

pub const DOCUMENT_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>"#;

/// A minimal docx: content types, rels, document, plus the given extra entries.
pub fn docx(custom: Option<String>, labelinfo: Option<String>) -> Vec<Entry> {
    let mut entries = vec![
        Entry::new("[Content_Types].xml", CT_DOCX),
        Entry::new(
            "_rels/.rels",
            rels(custom.as_ref().map(|_| "docProps/custom.xml"), labelinfo.as_ref().map(|_| "docMetadata/LabelInfo.xml")),
        ),
        Entry::new("word/document.xml", DOCUMENT_XML),
    ];
    if let Some(c) = custom {
        entries.push(Entry::new("docProps/custom.xml", c));
    }
    if let Some(l) = labelinfo {
        entries.push(Entry::new("docMetadata/LabelInfo.xml", l));
    }
    entries
}

pub fn zip(entries: &[Entry]) -> Vec<u8> {
    build_zip(entries, &ZipOptions::default())
}

/// A PDF written object by object, with classic or stream cross-reference sections and
/// incremental updates.
pub struct Pdf {
    pub buf: Vec<u8>,
    pub pending: Vec<(u32, u64)>,
    pub pending_compressed: Vec<(u32, u32, u32)>,
    pub last_xref: Option<u64>,
}

impl Default for Pdf {
    fn default() -> Pdf {
        Pdf::new()
    }
}

impl Pdf {
    pub fn new() -> Pdf {
        Pdf { buf: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(), pending: Vec::new(), pending_compressed: Vec::new(), last_xref: None }
    }

    pub fn obj(&mut self, n: u32, body: &str) -> &mut Pdf {
        self.obj_bytes(n, body.as_bytes())
    }

    pub fn obj_bytes(&mut self, n: u32, body: &[u8]) -> &mut Pdf {
        self.pending.push((n, self.buf.len() as u64));
        self.buf.extend_from_slice(format!("{n} 0 obj\n").as_bytes());
        self.buf.extend_from_slice(body);
        self.buf.extend_from_slice(b"\nendobj\n");
        self
    }

    pub fn stream(&mut self, n: u32, dict_extra: &str, data: &[u8], compress: bool) -> &mut Pdf {
        let (payload, filter) = if compress { (zlib(data), "/Filter /FlateDecode ") } else { (data.to_vec(), "") };
        let mut body = format!("<< {filter}/Length {} {dict_extra}>>\nstream\n", payload.len()).into_bytes();
        body.extend_from_slice(&payload);
        body.extend_from_slice(b"\nendstream");
        self.obj_bytes(n, &body)
    }

    /// An object stream `n` holding the given (number, body) objects.
    pub fn object_stream(&mut self, n: u32, objects: &[(u32, &str)]) -> &mut Pdf {
        let mut header = String::new();
        let mut body = String::new();
        for (i, (num, text)) in objects.iter().enumerate() {
            header.push_str(&format!("{num} {} ", body.len()));
            body.push_str(text);
            body.push('\n');
            self.pending_compressed.push((*num, n, i as u32));
        }
        let data = format!("{header}{body}");
        self.stream(n, &format!("/Type /ObjStm /N {} /First {} ", objects.len(), header.len()), data.as_bytes(), true)
    }

    /// A classic `xref` table for the objects written since the last section, then the trailer.
    pub fn classic_xref(&mut self, trailer: &str) -> &mut Pdf {
        let at = self.buf.len() as u64;
        let mut objs = std::mem::take(&mut self.pending);
        objs.sort();
        let mut s = String::from("xref\n");
        if self.last_xref.is_none() {
            s.push_str("0 1\n0000000000 65535 f \n");
        }
        // Contiguous object numbers share one subsection, as real writers do.
        let mut i = 0;
        while i < objs.len() {
            let mut j = i + 1;
            while j < objs.len() && objs[j].0 == objs[j - 1].0 + 1 {
                j += 1;
            }
            s.push_str(&format!("{} {}\n", objs[i].0, j - i));
            for (_, off) in &objs[i..j] {
                s.push_str(&format!("{off:010} 00000 n \n"));
            }
            i = j;
        }
        let prev = self.last_xref.map(|p| format!(" /Prev {p}")).unwrap_or_default();
        let size = objs.iter().map(|(n, _)| n + 1).max().unwrap_or(1).max(100);
        s.push_str(&format!("trailer\n<< /Size {size}{prev} {trailer} >>\nstartxref\n{at}\n%%EOF\n"));
        self.buf.extend_from_slice(s.as_bytes());
        self.last_xref = Some(at);
        self
    }

    /// An xref stream (object `n`) for the objects written since the last section.
    pub fn xref_stream(&mut self, n: u32, trailer: &str) -> &mut Pdf {
        self.xref_stream_inner(n, trailer, true)
    }

    /// The companion xref stream of a hybrid file: no `startxref`, not part of the `/Prev` chain.
    pub fn companion_xref_stream(&mut self, n: u32) -> u64 {
        let at = self.buf.len() as u64;
        self.xref_stream_inner(n, "", false);
        at
    }

    fn xref_stream_inner(&mut self, n: u32, trailer: &str, standalone: bool) -> &mut Pdf {
        let at = self.buf.len() as u64;
        let mut rows: Vec<(u32, [u8; 6])> = Vec::new();
        for (num, off) in std::mem::take(&mut self.pending) {
            let o = (off as u32).to_be_bytes();
            rows.push((num, [1, o[0], o[1], o[2], o[3], 0]));
        }
        for (num, stm, idx) in std::mem::take(&mut self.pending_compressed) {
            let s = stm.to_be_bytes();
            rows.push((num, [2, s[0], s[1], s[2], s[3], idx as u8]));
        }
        let o = (at as u32).to_be_bytes();
        rows.push((n, [1, o[0], o[1], o[2], o[3], 0]));
        rows.sort();
        rows.dedup_by_key(|r| r.0);
        let mut index = String::new();
        let mut data = Vec::new();
        for (num, row) in &rows {
            index.push_str(&format!("{num} 1 "));
            data.extend_from_slice(row);
        }
        let prev = if standalone { self.last_xref.map(|p| format!(" /Prev {p}")).unwrap_or_default() } else { String::new() };
        let size = rows.iter().map(|(n, _)| n + 1).max().unwrap_or(1).max(100);
        let payload = zlib(&data);
        let mut body = format!(
            "<< /Type /XRef /Size {size} /W [1 4 1] /Index [{index}]{prev} {trailer} /Filter /FlateDecode /Length {} >>\nstream\n",
            payload.len()
        )
        .into_bytes();
        body.extend_from_slice(&payload);
        body.extend_from_slice(b"\nendstream");
        self.buf.extend_from_slice(format!("{n} 0 obj\n").as_bytes());
        self.buf.extend_from_slice(&body);
        if standalone {
            self.buf.extend_from_slice(format!("\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
            self.last_xref = Some(at);
        } else {
            self.buf.extend_from_slice(b"\nendobj\n");
        }
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.buf.clone()
    }
}

pub fn info_dict(labels: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("<< /Producer (test) ");
    for (guid, site, enabled) in labels {
        s.push_str(&format!(
            "/MSIP_Label_{guid}_Enabled ({enabled}) /MSIP_Label_{guid}_SiteId ({site}) /MSIP_Label_{guid}_Method (Standard) "
        ));
    }
    s.push_str(">>");
    s
}

pub fn xmp(labels: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:pdfx="http://ns.adobe.com/pdfx/1.3/">"#,
    );
    for (guid, site, enabled) in labels {
        s.push_str(&format!("<pdfx:MSIP_Label_{guid}_Enabled>{enabled}</pdfx:MSIP_Label_{guid}_Enabled><pdfx:MSIP_Label_{guid}_SiteId>{site}</pdfx:MSIP_Label_{guid}_SiteId>"));
    }
    s.push_str(r#"</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"#);
    s
}

/// A one-page PDF with the given Info and optional XMP, classic xref.
pub fn simple_pdf(info: &str, xmp_data: Option<&str>, compress_xmp: bool) -> Vec<u8> {
    let mut p = Pdf::new();
    let meta = if xmp_data.is_some() { "/Metadata 5 0 R " } else { "" };
    p.obj(1, &format!("<< /Type /Catalog /Pages 2 0 R {meta}>>"));
    p.obj(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    p.obj(3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>");
    p.obj(4, info);
    if let Some(x) = xmp_data {
        p.stream(5, "/Type /Metadata /Subtype /XML ", x.as_bytes(), compress_xmp);
    }
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.bytes()
}

/// A compound file with the given streams (paths like "/\u{6}DataSpaces/TransformInfo/LabelInfo").
pub fn compound(streams: &[(&str, &[u8])]) -> Vec<u8> {
    let cursor = std::io::Cursor::new(Vec::new());
    let mut comp = cfb::CompoundFile::create(cursor).unwrap();
    for (path, data) in streams {
        let p = std::path::Path::new(path);
        if let Some(parent) = p.parent() {
            if parent != std::path::Path::new("/") {
                comp.create_storage_all(parent).unwrap();
            }
        }
        let mut s = comp.create_stream(p).unwrap();
        s.write_all(data).unwrap();
    }
    comp.flush().unwrap();
    comp.into_inner().into_inner()
}

/// Deterministic filler bytes (xorshift), incompressible like real media.
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A labeled docx of about `total` bytes: the label parts plus stored media entries of 1 MiB.
pub fn large_docx(total: usize) -> Vec<u8> {
    let mut entries = docx(Some(custom_xml(&[(GUID_A, SITE_OTHER, "true")])), Some(labelinfo_xml(&[(GUID_B, SITE_MS, "1", "0")])));
    let chunk = 1 << 20;
    let mut i = 0;
    while i * chunk < total.saturating_sub(chunk / 2) {
        entries.push(Entry::new(&format!("word/media/image{i}.png"), filler(chunk.min(total), i as u64 + 7)).stored());
        i += 1;
    }
    zip(&entries)
}

/// A labeled PDF with `pages` pages, each with a content stream of `page_bytes` filler bytes;
/// Info and XMP near the start, a classic xref at the end, as Office writes them.
pub fn large_pdf(pages: usize, page_bytes: usize) -> Vec<u8> {
    let mut p = Pdf::new();
    let first_page = 10u32;
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", first_page + 2 * i as u32)).collect();
    p.obj(1, "<< /Type /Catalog /Pages 2 0 R /Metadata 5 0 R >>");
    p.obj(2, &format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")));
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "true")]));
    p.stream(5, "/Type /Metadata /Subtype /XML ", xmp(&[(GUID_A, SITE_MS, "true")]).as_bytes(), false);
    for i in 0..pages {
        let page = first_page + 2 * i as u32;
        p.obj(page, &format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R >>", page + 1));
        p.stream(page + 1, "", &filler(page_bytes, i as u64 + 3), false);
    }
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.bytes()
}

/// A throwaway CA and a rustls server configuration for `127.0.0.1` with a leaf it signed, for
/// loopback HTTPS origins in tests: the configuration (offering `alpn`) and the CA certificate
/// (PEM) a client or labelgate trusts as an extra root.
pub fn loopback_server_tls(alpn: &[&[u8]]) -> (std::sync::Arc<rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    params.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (std::sync::Arc::new(config), ca_cert.pem())
}

/// A counting global allocator for memory tests, per thread: a test binary installs it with
/// `#[global_allocator] static A: labelgate_testkit::CountingAllocator = labelgate_testkit::CountingAllocator;`
/// and measures with [`peak_heap_during`]. Each thread counts only its own allocations, so what
/// other tests of the same binary allocate at the same time never enters a measurement.
pub struct CountingAllocator;

thread_local! {
    static THREAD_CURRENT: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
    static THREAD_PEAK: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn count_alloc(delta: isize) {
    // `try_with`: during thread teardown the slots may be gone; such allocations are not counted.
    let _ = THREAD_CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = THREAD_PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now)
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are updated.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count_alloc(layout.size() as isize);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count_alloc(layout.size() as isize);
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count_alloc(new_size as isize - layout.size() as isize);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count_alloc(-(layout.size() as isize));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// Peak heap growth of the calling thread while `f` runs (with [`CountingAllocator`] installed).
pub fn peak_heap_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = THREAD_CURRENT.with(|c| c.get());
    THREAD_PEAK.with(|p| p.set(base));
    let out = f();
    let peak = THREAD_PEAK.with(|p| p.get());
    (out, (peak - base).max(0) as usize)
}

/// A ustar header block for a member `name` of `size` bytes with type flag `typeflag`, its
/// checksum filled in.
pub fn tar_header(name: &str, size: usize, typeflag: u8) -> Vec<u8> {
    let mut t = vec![0u8; 512];
    t[..name.len()].copy_from_slice(name.as_bytes());
    t[100..107].copy_from_slice(b"0000644");
    t[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    t[156] = typeflag;
    t[257..263].copy_from_slice(b"ustar\0");
    t[263..265].copy_from_slice(b"00");
    t[148..156].copy_from_slice(b"        ");
    let sum: u32 = t.iter().map(|&b| b as u32).sum();
    t[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    t
}

/// Appends one TNEF attribute (level, attribute id with its type word, length, data, checksum).
pub fn tnef_attribute(out: &mut Vec<u8>, level: u8, id: u32, data: &[u8]) {
    out.push(level);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let sum: u32 = data.iter().map(|&b| b as u32).sum();
    out.extend_from_slice(&((sum & 0xffff) as u16).to_le_bytes());
}

/// The real-world corpus directory (`manifest.tsv`, `exiftool_msip.json` and `files/`):
/// `$LABELGATE_CORPUS` when set (an absolute path: `scripts/test.sh` exports what
/// `scripts/corpus.sh` prints, `../shared/corpus` or a cache fetched from the files' public
/// sources), else `../shared/corpus` beside the repository.
pub fn corpus_dir() -> std::path::PathBuf {
    match std::env::var_os("LABELGATE_CORPUS") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        // crates/testkit → the workspace root (../..) → ../shared/corpus beside it.
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    }
}

/// The Python interpreter of the test venv (pikepdf, msoffcrypto-tool, olefile), made by
/// `scripts/python.sh` on first use.
pub fn test_python() -> std::path::PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/python.sh");
    let out = std::process::Command::new("bash").arg(script).output().expect("bash runs scripts/python.sh");
    assert!(out.status.success(), "scripts/python.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Builds the files-hidden-in-files fixtures (embeddings, prefixes, PDF attachments, no-secret
/// encryption) around corpus files into `dir`: `crates/unpack/tests/make_hidden.py`.
pub fn make_hidden_fixtures(dir: &std::path::Path) {
    let status = std::process::Command::new(test_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../unpack/tests/make_hidden.py"))
        .arg(dir)
        .arg(corpus_dir().join("files"))
        .status()
        .expect("the venv's python runs");
    assert!(status.success(), "make_hidden.py failed");
}

/// Writes to `path` a ZIP of `entries` followed by one stored member `hole_name` of `hole` zero
/// bytes that is a hole in the file (sparse: it takes no disk), with ZIP64 sizes and offsets and
/// its true CRC. A 10 GiB document that costs a few kilobytes, for tests that must not read it.
pub fn sparse_zip(path: &std::path::Path, entries: &[Entry], hole_name: &str, hole: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let small = build_zip(entries, &ZipOptions::default());
    let eocd = &small[small.len() - 22..];
    let count = u16::from_le_bytes([eocd[10], eocd[11]]) as u64;
    let cd_size = u32::from_le_bytes([eocd[12], eocd[13], eocd[14], eocd[15]]) as usize;
    let cd_offset = u32::from_le_bytes([eocd[16], eocd[17], eocd[18], eocd[19]]) as usize;
    // The CRC of `hole` zeros, by combining CRCs of doubling runs of zeros.
    let mut run = crc32fast::Hasher::new();
    run.update(&vec![0u8; 1 << 20]);
    let mut run_len: u64 = 1 << 20;
    let mut crc = crc32fast::Hasher::new();
    let mut left = hole;
    assert_eq!(left % run_len, 0, "a whole number of MiB");
    left /= run_len;
    while left > 0 {
        if left & 1 == 1 {
            crc.combine(&run);
        }
        let copy = run.clone();
        run.combine(&copy);
        run_len *= 2;
        left >>= 1;
    }
    let _ = run_len;
    let crc = crc.finalize();
    let mut f = std::fs::File::create(path)?;
    f.write_all(&small[..cd_offset])?;
    let hole_at = cd_offset as u64;
    let name = hole_name.as_bytes();
    let mut local = Vec::new();
    local.extend_from_slice(b"PK\x03\x04");
    local.extend_from_slice(&45u16.to_le_bytes());
    local.extend_from_slice(&0x0800u16.to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    local.extend_from_slice(&[0, 0, 0x21, 0]);
    local.extend_from_slice(&crc.to_le_bytes());
    local.extend_from_slice(&u32::MAX.to_le_bytes());
    local.extend_from_slice(&u32::MAX.to_le_bytes());
    local.extend_from_slice(&(name.len() as u16).to_le_bytes());
    local.extend_from_slice(&20u16.to_le_bytes());
    local.extend_from_slice(name);
    local.extend_from_slice(&1u16.to_le_bytes());
    local.extend_from_slice(&16u16.to_le_bytes());
    local.extend_from_slice(&hole.to_le_bytes());
    local.extend_from_slice(&hole.to_le_bytes());
    f.write_all(&local)?;
    f.seek(SeekFrom::Current(hole as i64))?;
    let central_at = hole_at + local.len() as u64 + hole;
    let mut central = small[cd_offset..cd_offset + cd_size].to_vec();
    central.extend_from_slice(b"PK\x01\x02");
    central.extend_from_slice(&[20, 3]);
    central.extend_from_slice(&45u16.to_le_bytes());
    central.extend_from_slice(&0x0800u16.to_le_bytes());
    central.extend_from_slice(&0u16.to_le_bytes());
    central.extend_from_slice(&[0, 0, 0x21, 0]);
    central.extend_from_slice(&crc.to_le_bytes());
    central.extend_from_slice(&u32::MAX.to_le_bytes());
    central.extend_from_slice(&u32::MAX.to_le_bytes());
    central.extend_from_slice(&(name.len() as u16).to_le_bytes());
    central.extend_from_slice(&28u16.to_le_bytes());
    central.extend_from_slice(&[0; 10]);
    central.extend_from_slice(&u32::MAX.to_le_bytes());
    central.extend_from_slice(name);
    central.extend_from_slice(&1u16.to_le_bytes());
    central.extend_from_slice(&24u16.to_le_bytes());
    central.extend_from_slice(&hole.to_le_bytes());
    central.extend_from_slice(&hole.to_le_bytes());
    central.extend_from_slice(&hole_at.to_le_bytes());
    let total = count + 1;
    let z64 = central_at + central.len() as u64;
    let mut tail = central;
    tail.extend_from_slice(b"PK\x06\x06");
    tail.extend_from_slice(&44u64.to_le_bytes());
    tail.extend_from_slice(&[45, 0, 45, 0]);
    tail.extend_from_slice(&[0; 8]);
    tail.extend_from_slice(&total.to_le_bytes());
    tail.extend_from_slice(&total.to_le_bytes());
    tail.extend_from_slice(&(z64 - central_at).to_le_bytes());
    tail.extend_from_slice(&central_at.to_le_bytes());
    tail.extend_from_slice(b"PK\x06\x07");
    tail.extend_from_slice(&[0; 4]);
    tail.extend_from_slice(&z64.to_le_bytes());
    tail.extend_from_slice(&1u32.to_le_bytes());
    tail.extend_from_slice(b"PK\x05\x06");
    tail.extend_from_slice(&[0; 4]);
    tail.extend_from_slice(&0xFFFFu16.to_le_bytes());
    tail.extend_from_slice(&0xFFFFu16.to_le_bytes());
    tail.extend_from_slice(&u32::MAX.to_le_bytes());
    tail.extend_from_slice(&u32::MAX.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    f.write_all(&tail)?;
    f.sync_all()
}
