//! Outlook `.msg` attachments (MS-OXMSG): each `__attach_version1.0_#XXXXXXXX` storage holds a
//! file (`PR_ATTACH_DATA_BIN`, stream `__substg1.0_37010102`) or an embedded message
//! (`PR_ATTACH_DATA_OBJ`, storage `__substg1.0_3701000D`, with attachments of its own). The
//! labels of an embedded message are read from its own property streams, through the root's
//! named-property table, exactly as for the outer message.

use crate::cfb::Cfb;
use crate::compound::msg_labels;
use crate::error::ExtractError;
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind};
use crate::msip::apply_labelinfo_precedence;

/// What one attachment of a `.msg` carries.
#[derive(Debug)]
pub enum MsgContent {
    /// A file attachment's bytes (read through the extractor like any other file).
    File(Vec<u8>),
    /// An embedded message: its labels, read in place (its own attachments follow it in the
    /// list, one level deeper).
    Message(Extraction),
    /// An attachment that could not be read (too large, broken chain).
    Unreadable(ExtractError),
}

/// One attachment, at any depth of embedded messages.
#[derive(Debug)]
pub struct MsgAttachment {
    /// Names from the outer message down: an attachment of an embedded message has the
    /// embedded message's name first. Names come from the message and may hold any character.
    pub path: Vec<String>,
    /// What it carries.
    pub content: MsgContent,
}

/// Bounds on walking a `.msg`'s attachments.
#[derive(Debug, Clone, Copy)]
pub struct MsgBounds {
    /// Bytes of one attachment read into memory.
    pub max_attachment_bytes: u64,
    /// Embedded messages followed inside one another.
    pub max_depth: usize,
    /// Attachments listed in all.
    pub max_attachments: usize,
    /// Bytes of all attachments held at once (they are returned together).
    pub max_total_bytes: u64,
}

/// Every attachment of a `.msg` held by `input`, depth-first. Fails only when the compound file
/// itself cannot be read; an attachment that cannot be read is listed as `Unreadable`.
/// `Err(LimitExceeded { limit: "max_attachments" | "max_depth" })` when the walk is cut short.
pub fn msg_attachments(input: &mut dyn Input, limits: &Limits, bounds: MsgBounds) -> Result<Vec<MsgAttachment>, ExtractError> {
    let mut cfb = Cfb::open(input, limits)?;
    let mut out = Vec::new();
    let mut held = 0u64;
    walk(&mut cfb, 0, &[], 0, limits, bounds, &mut out, &mut held)?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    cfb: &mut Cfb<'_>,
    message: usize,
    prefix: &[String],
    depth: usize,
    limits: &Limits,
    bounds: MsgBounds,
    out: &mut Vec<MsgAttachment>,
    held: &mut u64,
) -> Result<(), ExtractError> {
    let mut attachments: Vec<(String, usize)> = cfb
        .children(message)
        .into_iter()
        .filter(|&i| cfb.entries[i].kind == 1 && cfb.entries[i].name.to_ascii_lowercase().starts_with("__attach_version1.0_#"))
        .map(|i| (cfb.entries[i].name.clone(), i))
        .collect();
    // Directory order is a red-black tree's; the attachment number gives Outlook's order.
    attachments.sort();
    for (n, (_, storage)) in attachments.into_iter().enumerate() {
        if out.len() >= bounds.max_attachments {
            return Err(ExtractError::limit("max_attachments", bounds.max_attachments as u64));
        }
        let name = attachment_name(cfb, storage)?.unwrap_or_else(|| format!("attachment {}", n + 1));
        let mut path = prefix.to_vec();
        path.push(name);
        if let Some(&data) = cfb.find(storage, "__substg1.0_37010102").first() {
            let content = match cfb.read_stream_capped(data, bounds.max_attachment_bytes, "max_inner_bytes") {
                Ok(bytes) => {
                    // Attachments may share sectors: what is held in all is bounded, not each.
                    *held = held.saturating_add(bytes.len() as u64);
                    if *held > bounds.max_total_bytes {
                        return Err(ExtractError::limit("max_expanded_bytes", bounds.max_total_bytes));
                    }
                    MsgContent::File(bytes)
                }
                Err(e) => MsgContent::Unreadable(e),
            };
            out.push(MsgAttachment { path, content });
        } else if let Some(&embedded) = cfb.find(storage, "__substg1.0_3701000D").first() {
            let is_message = cfb.children(embedded).iter().any(|&i| {
                let name = cfb.entries[i].name.to_ascii_lowercase();
                name == "__properties_version1.0" || name.starts_with("__substg1.0_") || name.starts_with("__attach_version1.0_#")
            });
            if !is_message {
                // An OLE object attachment (ATTACH_OLE): a storage holding an embedded document,
                // which this reader does not open. Listed, so policy decides on it.
                out.push(MsgAttachment {
                    path,
                    content: MsgContent::Unreadable(ExtractError::malformed("msg", "unsupported: an OLE object attachment")),
                });
                continue;
            }
            if depth + 1 > bounds.max_depth {
                return Err(ExtractError::limit("max_depth", bounds.max_depth as u64));
            }
            let mut ex = Extraction::new(FileKind::Msg);
            match msg_labels(cfb, embedded, limits, &mut ex) {
                Ok(mut records) => {
                    apply_labelinfo_precedence(&mut records);
                    records.truncate(limits.max_records);
                    ex.records = records;
                    ex.finalize();
                    out.push(MsgAttachment { path: path.clone(), content: MsgContent::Message(ex) });
                }
                Err(e) => {
                    out.push(MsgAttachment { path: path.clone(), content: MsgContent::Unreadable(e) });
                    continue;
                }
            }
            walk(cfb, embedded, &path, depth + 1, limits, bounds, out, held)?;
        }
    }
    Ok(())
}

/// The attachment's file name: long name, short name, then display name (Unicode or 8-bit).
fn attachment_name(cfb: &mut Cfb<'_>, storage: usize) -> Result<Option<String>, ExtractError> {
    for id in ["3707", "3704", "3001"] {
        for (suffix, unicode) in [("001F", true), ("001E", false)] {
            let Some(&s) = cfb.find(storage, &format!("__substg1.0_{id}{suffix}")).first() else { continue };
            let raw = cfb.read_stream_prefix(s, 2048)?;
            let name = if unicode {
                let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
            };
            if !name.trim().is_empty() {
                return Ok(Some(name));
            }
        }
    }
    Ok(None)
}

/// One stream of a compound file whose first bytes a caller asked for.
#[derive(Debug)]
pub struct CfbStream {
    /// Storage names from the root down, then the stream's name.
    pub path: Vec<String>,
    /// Its bytes (at most the cap given), or why they could not be read.
    pub data: Result<Vec<u8>, ExtractError>,
}

/// Every stream of a compound file whose first `head_len` bytes `wanted` accepts, read whole (at
/// most `max_bytes` each and `max_total_bytes` in all, at most `max_streams` visited): how a container's streams (an OLE
/// `Package`, an embedded document) are examined as files of their own, as 7-Zip lists them.
pub fn cfb_streams(
    input: &mut dyn Input,
    limits: &Limits,
    head_len: usize,
    max_bytes: u64,
    max_streams: usize,
    max_total_bytes: u64,
    wanted: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<Vec<CfbStream>, ExtractError> {
    let mut held = 0u64;
    let mut cfb = Cfb::open(input, limits)?;
    let mut out = Vec::new();
    // Depth-first over storages, bounded by the directory size; each entry visited once.
    let mut stack: Vec<(usize, Vec<String>)> = vec![(0, Vec::new())];
    let mut seen = vec![false; cfb.entries.len()];
    let mut visited = 0usize;
    while let Some((storage, prefix)) = stack.pop() {
        for child in cfb.children(storage) {
            if std::mem::replace(&mut seen[child], true) {
                continue;
            }
            visited += 1;
            if visited > max_streams {
                return Err(ExtractError::limit("max_members", max_streams as u64));
            }
            let entry = cfb.entries[child].clone();
            let mut path = prefix.clone();
            path.push(entry.name.clone());
            match entry.kind {
                1 => stack.push((child, path)),
                2 if crate::cfb::eq_name(&entry.name, "\u{1}Ole10Native") => {
                    // An embedded file wrapped by the OLE1 Packager: the file is the member,
                    // named as the user's file was.
                    let data = cfb.read_stream_capped(child, max_bytes.saturating_add(64 * 1024), "max_inner_bytes");
                    let data = data.map(|d| {
                        let (name, range) = crate::ole::ole10_native(&d);
                        if let Some(name) = name {
                            if let Some(last) = path.last_mut() {
                                *last = name;
                            }
                        }
                        d[range].to_vec()
                    });
                    if data.as_ref().is_ok_and(|d| d.len() as u64 > max_bytes) {
                        out.push(CfbStream { path, data: Err(ExtractError::limit("max_inner_bytes", max_bytes)) });
                        continue;
                    }
                    held = held.saturating_add(data.as_ref().map_or(0, |d| d.len() as u64));
                    if held > max_total_bytes {
                        return Err(ExtractError::limit("max_expanded_bytes", max_total_bytes));
                    }
                    out.push(CfbStream { path, data });
                }
                2 => {
                    let head = cfb.read_stream_prefix(child, head_len)?;
                    // A start that matches nothing may still end as a ZIP or a PDF (a package
                    // behind an image header or junk), as unzip and PDF readers see it.
                    let mut ends_as_file = || -> Result<bool, ExtractError> {
                        if entry.size <= head.len() as u64 {
                            return Ok(crate::zip::has_end_record(&head) || crate::pdf::ends_like_pdf(&head));
                        }
                        let tail = cfb.read_stream_tail(child, 64 * 1024 + 22)?;
                        Ok(crate::zip::has_end_record(&tail) || crate::pdf::ends_like_pdf(&tail))
                    };
                    if wanted(&head) || ends_as_file()? {
                        let data = cfb.read_stream_capped(child, max_bytes, "max_inner_bytes");
                        // Streams may share sectors: what is held in all is bounded, not each.
                        held = held.saturating_add(data.as_ref().map_or(0, |d| d.len() as u64));
                        if held > max_total_bytes {
                            return Err(ExtractError::limit("max_expanded_bytes", max_total_bytes));
                        }
                        out.push(CfbStream { path, data });
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The body of an Outlook message (`.msg`): its plain-text body (`PidTagBody`, Unicode or
/// ANSI) and its HTML body (`PidTagHtml`), each at most `max_bytes`, with whether it is HTML.
/// Bodies of embedded messages and attachments are not included.
pub fn msg_body_text(input: &mut dyn Input, limits: &Limits, max_bytes: u64) -> Result<Vec<(String, bool)>, ExtractError> {
    let mut cfb = Cfb::open(input, limits)?;
    let mut bodies = Vec::new();
    // (stream name, encoding, HTML)
    const BODIES: &[(&str, u8, bool)] = &[
        ("__substg1.0_1000001F", 0, false),
        ("__substg1.0_1000001E", 1, false),
        ("__substg1.0_1013001F", 0, true),
        ("__substg1.0_10130102", 1, true),
    ];
    for child in cfb.children(0) {
        let entry = cfb.entries[child].clone();
        let Some(&(_, encoding, html)) = BODIES.iter().find(|(name, _, _)| crate::cfb::eq_name(&entry.name, name)) else { continue };
        if entry.kind != 2 {
            continue;
        }
        let data = cfb.read_stream_capped(child, max_bytes, "max_text_source_bytes")?;
        let text = match encoding {
            0 => {
                let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                String::from_utf16_lossy(&units)
            }
            // ANSI and binary HTML bodies: UTF-8 when they are, else Windows-1252 (the code page
            // most messages state).
            _ => match String::from_utf8(data) {
                Ok(s) => s,
                Err(e) => encoding_rs::WINDOWS_1252.decode(e.as_bytes()).0.into_owned(),
            },
        };
        bodies.push((text.trim_end_matches('\0').to_string(), html));
    }
    // Plain text first, whatever the directory's order.
    bodies.sort_by_key(|(_, html)| *html);
    Ok(bodies)
}
