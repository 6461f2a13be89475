//! TNEF (`winmail.dat`, MS-OXTNEF): the attachments Outlook wraps for recipients that are not
//! Outlook. Each attachment's data (`attAttachData`) is an inner file named by its title
//! (`attAttachTitle`). Attachments carried only as MAPI properties (an embedded message,
//! `PR_ATTACH_DATA_OBJ`) are not decoded and make the container `unsupported`.
//! No maintained crate reads TNEF; the format is a flat list of attributes.

use crate::{Body, Problem, Walker};
use labelgate_extract::{Input, SliceInput};

const SIGNATURE: u32 = 0x223e_9f78;
const LVL_ATTACHMENT: u8 = 0x02;
// Attribute ids (the low 16 bits; readers ignore the type word above them).
const ATT_ATTACH_REND_DATA: u32 = 0x9002;
const ATT_ATTACH_TITLE: u32 = 0x8010;
const ATT_ATTACH_DATA: u32 = 0x800f;
const ATT_ATTACHMENT: u32 = 0x9005;
/// `PR_ATTACH_DATA_OBJ` as a PT_OBJECT property tag.
const PR_ATTACH_DATA_OBJ: [u8; 4] = 0x3701_000du32.to_le_bytes();
/// `PR_ATTACH_DATA_BIN` as a PT_BINARY property tag: the file itself, in the MAPI properties.
const PR_ATTACH_DATA_BIN: [u8; 4] = 0x3701_0102u32.to_le_bytes();

struct Attachment {
    title: Option<String>,
    /// `attAttachData`, and the file as `PR_ATTACH_DATA_BIN` in the MAPI properties: readers
    /// take one or the other, so both are examined.
    data: Vec<(usize, usize)>,
    embedded_object: bool,
}

pub(crate) fn members(walker: &mut Walker<'_>, input: &mut dyn Input, path: &[String], depth: u32) -> Result<(), Problem> {
    let cap = walker.bounds.max_inner_bytes;
    if input.len() > cap {
        return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
    }
    let raw = input.read_at(0, input.len() as usize, "tnef").map_err(|_| malformed("unreadable"))?.into_owned();
    if raw.len() < 6 || u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) != SIGNATURE {
        return Err(malformed("no TNEF signature"));
    }
    let mut attachments: Vec<Attachment> = Vec::new();
    let mut at = 6usize;
    while at < raw.len() {
        let header = raw.get(at..at + 9).ok_or_else(|| malformed("truncated attribute"))?;
        let level = header[0];
        let id = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) & 0xffff;
        let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
        let start = at + 9;
        let end = start.checked_add(len).filter(|&e| e + 2 <= raw.len()).ok_or_else(|| malformed("attribute runs past the end"))?;
        if level == LVL_ATTACHMENT {
            if id == ATT_ATTACH_REND_DATA || attachments.is_empty() {
                if attachments.len() as u64 >= walker.bounds.max_members {
                    return Err(Problem::NestedLimit { limit: "max_members", max: walker.bounds.max_members });
                }
                attachments.push(Attachment { title: None, data: Vec::new(), embedded_object: false });
            }
            if let Some(current) = attachments.last_mut() {
                match id {
                    ATT_ATTACH_TITLE => {
                        let text = &raw[start..end];
                        let text = text.split(|&b| b == 0).next().unwrap_or(&[]);
                        current.title = Some(String::from_utf8_lossy(text).into_owned()).filter(|t| !t.is_empty());
                    }
                    ATT_ATTACH_DATA => current.data.push((start, end)),
                    ATT_ATTACHMENT => {
                        let props = &raw[start..end];
                        current.embedded_object |= memchr::memmem::find(props, &PR_ATTACH_DATA_OBJ).is_some();
                        // The file may travel here too: tag, value count, length, bytes.
                        for at in memchr::memmem::find_iter(props, &PR_ATTACH_DATA_BIN) {
                            let Some(len) = props.get(at + 8..at + 12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                            else {
                                continue;
                            };
                            if at + 12 + len <= props.len() {
                                current.data.push((start + at + 12, start + at + 12 + len));
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        at = end + 2; // the attribute's checksum
    }
    let mut unsupported = false;
    for (n, attachment) in attachments.iter().enumerate() {
        let mut child = path.to_vec();
        child.push(attachment.title.clone().unwrap_or_else(|| format!("attachment {}", n + 1)));
        if attachment.data.is_empty() && attachment.embedded_object {
            unsupported = true;
        }
        for &(start, end) in &attachment.data {
            let data = &raw[start..end];
            walker.child(Body::Input(&mut SliceInput::new(data)), child.clone(), depth + 1, Some(data.len() as u64))?;
        }
    }
    if unsupported {
        return Err(Problem::Unsupported("TNEF attachment carried as a MAPI object (an embedded message)".into()));
    }
    Ok(())
}

fn malformed(why: &str) -> Problem {
    Problem::Malformed(format!("tnef: {why}"))
}
