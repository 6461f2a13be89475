//! A sensitivity label written into a PDF as Office writes it, by an incremental update: the
//! bytes appended after the file's end hold a new document information dictionary with the
//! `MSIP_Label_<guid>_*` entries, a new XMP metadata stream with the same properties in the
//! `pdfx` namespace, the catalog pointing at it, and a cross-reference section whose `/Prev`
//! is the file's last one. Every byte of the original stays where it was.

use super::{malformed, open, Doc};
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind};
use crate::pdf_syntax::{dict_get, Dict, Obj};
use crate::ExtractError;

const NS_PDFX: &str = "http://ns.adobe.com/pdfx/1.3/";

/// The bytes to append to the PDF in `input` so that it carries `properties` (names without a
/// slash, values as text) in its Info dictionary and XMP, with every existing Info entry and
/// XMP property whose name starts with one of `remove` taken out. Refused for encrypted files,
/// files behind a prefix, and files whose catalog or trailer cannot be read.
pub fn pdf_label_update(
    input: &mut dyn Input,
    limits: &Limits,
    properties: &[(String, String)],
    remove: &[String],
) -> Result<Vec<u8>, ExtractError> {
    let head = input.read_upto(0, 1024)?.into_owned();
    if !head.starts_with(b"%PDF-") {
        return Err(malformed("the document does not start at the file's first byte"));
    }
    let len = input.len();
    let tail = input.read_at(len - len.min(1024), len.min(1024) as usize, "pdf")?.into_owned();
    let previous = last_startxref(&tail).ok_or_else(|| malformed("no startxref at the end"))?;
    let mut ex = Extraction::new(FileKind::Pdf);
    let mut doc = open(input, limits, 0, &mut ex)?;
    if ex.has_flag(crate::Flag::Ambiguous) {
        // A rebuilt or disputed cross-reference: an update chained to it would inherit that.
        return Err(malformed("the document's structure is ambiguous"));
    }
    if doc.trailer_value(0, b"Encrypt").is_some() {
        return Err(malformed("encrypted documents are not labelled"));
    }
    let size = doc
        .trailer_value(0, b"Size")
        .and_then(|s| s.as_int())
        .filter(|s| (1..8_000_000).contains(s))
        .ok_or_else(|| malformed("no /Size"))?;
    let Some(Obj::Ref(root, root_gen)) = doc.trailer_value(0, b"Root") else { return Err(malformed("no /Root")) };
    let Some(Obj::Dict(mut catalog)) = doc.deref(&Obj::Ref(root, root_gen), 0)? else {
        return Err(malformed("the catalog is not a dictionary"));
    };
    let mut info: Dict = match doc.trailer_value(0, b"Info") {
        Some(r) => match doc.lenient_deref(&r, 0)? {
            Some(Obj::Dict(d)) => d,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    // Keys compared as the label reader compares them: any case, braces around the GUID.
    let normal = |name: &[u8]| -> String { String::from_utf8_lossy(name).to_ascii_lowercase().replace(['{', '}'], "") };
    let remove_lower: Vec<String> = remove.iter().map(|p| p.to_ascii_lowercase()).collect();
    info.retain(|(k, _)| !remove_lower.iter().any(|p| normal(k).starts_with(p.as_str())));
    for (k, v) in properties {
        // PDFDocEncoding for ASCII; UTF-16BE with its byte order mark for anything else.
        let value = if v.is_ascii() {
            v.as_bytes().to_vec()
        } else {
            [0xFE, 0xFF].into_iter().chain(v.encode_utf16().flat_map(u16::to_be_bytes)).collect()
        };
        info.push((k.as_bytes().to_vec(), Obj::Str(value)));
    }
    let xmp = existing_xmp(&mut doc, &catalog)?;
    let xmp = labelled_xmp(xmp.as_deref(), properties, remove);
    // Two object numbers no revision uses (a /Size that undercounts is not trusted).
    let mut info_num = (size as u32).max(root + 1);
    while !free(&mut doc, info_num)? || !free(&mut doc, info_num + 1)? {
        info_num += 1;
        if info_num > 8_000_000 {
            return Err(malformed("no free object number"));
        }
    }
    let meta_num = info_num + 1;
    catalog.retain(|(k, _)| k.as_slice() != b"Metadata");
    catalog.push((b"Metadata".to_vec(), Obj::Ref(meta_num, 0)));

    let mut out = Vec::new();
    out.extend_from_slice(b"\n");
    let base = len;
    let mut offsets: Vec<(u32, u64)> = Vec::new();
    offsets.push((root, base + out.len() as u64));
    out.extend_from_slice(format!("{root} {root_gen} obj\n").as_bytes());
    write_obj(&mut out, &Obj::Dict(catalog));
    out.extend_from_slice(b"\nendobj\n");
    offsets.push((info_num, base + out.len() as u64));
    out.extend_from_slice(format!("{info_num} 0 obj\n").as_bytes());
    write_obj(&mut out, &Obj::Dict(info));
    out.extend_from_slice(b"\nendobj\n");
    offsets.push((meta_num, base + out.len() as u64));
    out.extend_from_slice(format!("{meta_num} 0 obj\n<</Type/Metadata/Subtype/XML/Length {}>>stream\n", xmp.len()).as_bytes());
    out.extend_from_slice(xmp.as_bytes());
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_at = base + out.len() as u64;
    out.extend_from_slice(b"xref\n0 1\n0000000000 65535 f \n");
    out.extend_from_slice(format!("{root} 1\n{:010} {:05} n \n", offsets[0].1, root_gen).as_bytes());
    out.extend_from_slice(format!("{info_num} 2\n{:010} 00000 n \n{:010} 00000 n \n", offsets[1].1, offsets[2].1).as_bytes());
    let mut new_trailer: Dict = vec![
        (b"Size".to_vec(), Obj::Int(i64::from(meta_num) + 1)),
        (b"Root".to_vec(), Obj::Ref(root, root_gen)),
        (b"Info".to_vec(), Obj::Ref(info_num, 0)),
        (b"Prev".to_vec(), Obj::Int(previous as i64)),
    ];
    if let Some(id) = doc.trailer_value(0, b"ID") {
        new_trailer.push((b"ID".to_vec(), id));
    }
    out.extend_from_slice(b"trailer\n");
    write_obj(&mut out, &Obj::Dict(new_trailer));
    out.extend_from_slice(format!("\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    Ok(out)
}

/// Whether no revision places object `n`.
fn free(doc: &mut Doc<'_>, n: u32) -> Result<bool, ExtractError> {
    Ok(matches!(doc.locate(n, 0)?, None | Some(super::Loc::Free)))
}

/// The offset after the file's last `startxref`.
fn last_startxref(tail: &[u8]) -> Option<u64> {
    let at = memchr::memmem::rfind(tail, b"startxref")?;
    let digits: String =
        tail[at + 9..].iter().skip_while(|b| b.is_ascii_whitespace()).take_while(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
    digits.parse().ok()
}

/// The catalog's XMP packet, when it has one that decodes as UTF-8.
fn existing_xmp(doc: &mut Doc<'_>, catalog: &Dict) -> Result<Option<String>, ExtractError> {
    let Some(Obj::Ref(n, _)) = dict_get(catalog, b"Metadata") else { return Ok(None) };
    let Some(stream) = (match doc.resolve_stream_from(*n, 0) {
        Err(ExtractError::Malformed { .. }) => None,
        other => other?,
    }) else {
        return Ok(None);
    };
    match doc.stream_data(&stream) {
        Ok(data) => Ok(String::from_utf8(data).ok()),
        Err(ExtractError::Malformed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The XMP packet with the label's `pdfx` properties in a description of their own, as Office
/// writes them, and the removed properties taken out.
fn labelled_xmp(existing: Option<&str>, properties: &[(String, String)], remove: &[String]) -> String {
    let mut description = format!("<rdf:Description rdf:about=\"\" xmlns:pdfx=\"{NS_PDFX}\">\n");
    for (k, v) in properties {
        description.push_str(&format!("<pdfx:{k}>{}</pdfx:{k}>\n", quick_xml::escape::escape(v.as_str())));
    }
    description.push_str("</rdf:Description>\n");
    let fresh = || {
        format!(
            "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n{description}</rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>"
        )
    };
    let Some(text) = existing else { return fresh() };
    // Elements of removed properties, any prefix and case: `<p:MSIP_Label_…_X>…</p:…>`. Only
    // an element whose own name is the property goes (not a description that carries it as
    // an attribute).
    let mut kept = text.to_string();
    for prefix in remove {
        let needle = format!(":{}", prefix.to_ascii_lowercase());
        let mut from = 0;
        while let Some(found) = kept.to_ascii_lowercase()[from..].find(&needle).map(|i| from + i) {
            from = found + needle.len();
            let Some(start) = kept[..found].rfind('<') else { continue };
            let name = kept[start + 1..].split(|c: char| c == '>' || c.is_whitespace() || c == '/').next().unwrap_or("").to_string();
            if !name.to_ascii_lowercase().ends_with(&needle[1..]) && !name.to_ascii_lowercase().contains(&needle) {
                continue;
            }
            let Some(open_end) = kept[start..].find('>').map(|i| start + i) else { break };
            let end = if kept[..open_end].ends_with('/') {
                open_end + 1
            } else {
                let close = format!("</{name}>");
                match kept[open_end..].find(&close) {
                    Some(i) => open_end + i + close.len(),
                    None => continue,
                }
            };
            kept.replace_range(start..end, "");
            from = start;
        }
    }
    match kept.rfind("</rdf:RDF>") {
        Some(at) => format!("{}{description}{}", &kept[..at], &kept[at..]),
        None => fresh(),
    }
}

/// PDF syntax for an object.
fn write_obj(out: &mut Vec<u8>, obj: &Obj) {
    match obj {
        Obj::Null => out.extend_from_slice(b"null"),
        Obj::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Obj::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Obj::Real(r) => out.extend_from_slice(format!("{r}").as_bytes()),
        Obj::Ref(n, g) => out.extend_from_slice(format!("{n} {g} R").as_bytes()),
        Obj::Name(name) => write_name(out, name),
        Obj::Str(s) => {
            out.push(b'(');
            for &b in s {
                match b {
                    b'(' | b')' | b'\\' => {
                        out.push(b'\\');
                        out.push(b);
                    }
                    0x20..=0x7e => out.push(b),
                    _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
                }
            }
            out.push(b')');
        }
        Obj::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_obj(out, item);
            }
            out.push(b']');
        }
        Obj::Dict(d) => {
            out.extend_from_slice(b"<<");
            for (k, v) in d {
                write_name(out, k);
                out.push(b' ');
                write_obj(out, v);
            }
            out.extend_from_slice(b">>");
        }
    }
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        if b.is_ascii_graphic() && !b"()<>[]{}/%#".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_xmp_are_written_as_readers_read_them() {
        let mut out = Vec::new();
        write_obj(
            &mut out,
            &Obj::Dict(vec![
                (b"A b".to_vec(), Obj::Str(b"x(y)\\\n\xe9".to_vec())),
                (b"R".to_vec(), Obj::Array(vec![Obj::Ref(3, 0), Obj::Int(-2)])),
            ]),
        );
        assert_eq!(out, b"<</A#20b (x\\(y\\)\\\\\\012\\351)/R [3 0 R -2]>>");
        let props = [("MSIP_Label_new_Enabled".to_string(), "true".to_string())];
        let existing = "<x:xmpmeta><rdf:RDF><rdf:Description xmlns:pdfx=\"p\"><pdfx:MSIP_Label_old_Enabled>true</pdfx:MSIP_Label_old_Enabled><pdfx:Other>1</pdfx:Other></rdf:Description></rdf:RDF></x:xmpmeta>";
        let xmp = labelled_xmp(Some(existing), &props, &["MSIP_Label_old_".to_string()]);
        assert!(!xmp.contains("MSIP_Label_old") && xmp.contains("<pdfx:Other>1</pdfx:Other>"), "{xmp}");
        assert!(xmp.contains("<pdfx:MSIP_Label_new_Enabled>true</pdfx:MSIP_Label_new_Enabled>\n</rdf:Description>\n</rdf:RDF>"), "{xmp}");
    }
}
