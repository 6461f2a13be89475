//! The label written as Office writes it into an OPC package: the `MSIP_Label_<guid>_*` custom
//! properties (Enabled, SetDate, Method = Standard, Name, SiteId, ActionId, ContentBits) in the
//! part the package relationship names (`docProps/custom.xml`, created with its relationship
//! and content type when absent), and the LabelInfo part (`docMetadata/LabelInfo.xml`) when the
//! package has one. The same tenant's earlier label properties are removed, as Office replaces
//! a label; other properties and other tenants' labels stay as they were, text for text.

use crate::zip::{self, Archive, Edits};
use crate::{ApplyError, NewLabel};
use quick_xml::events::Event;

const REL_CUSTOM: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties";
const REL_LABELINFO: &str = "http://schemas.microsoft.com/office/2020/02/relationships/classificationlabels";
const NS_CUSTOM: &str = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties";
const NS_VT: &str = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes";
const CT_CUSTOM: &str = "application/vnd.openxmlformats-officedocument.custom-properties+xml";
const FMTID: &str = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}";

fn bad(why: impl Into<String>) -> ApplyError {
    ApplyError::Package(why.into())
}

fn find<'a>(archive: &'a Archive, name: &str) -> Option<&'a zip::Member> {
    archive.members.iter().find(|m| m.name.trim_start_matches('/').eq_ignore_ascii_case(name))
}

fn utf8(data: Vec<u8>, part: &str) -> Result<String, ApplyError> {
    let data = match data.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => data,
    };
    String::from_utf8(data).map_err(|_| bad(format!("{part} is not UTF-8")))
}

/// XML text escaped for content and attribute values.
fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// One relationship of `_rels/.rels`: (Id, Type, Target).
fn relationships(xml: &str) -> Result<Vec<(String, String, String)>, ApplyError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().map_err(|e| bad(format!("_rels/.rels: {e}")))? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"Relationship" => {
                let mut rel = (String::new(), String::new(), String::new());
                for a in e.attributes().flatten() {
                    let value = a.unescape_value().map_err(|e| bad(format!("_rels/.rels: {e}")))?.into_owned();
                    match a.key.as_ref() {
                        b"Id" => rel.0 = value,
                        b"Type" => rel.1 = value,
                        b"Target" => rel.2 = value,
                        _ => {}
                    }
                }
                out.push(rel);
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// `text` with `insert` placed before its last `</…root>` closing tag.
fn before_close(text: &str, root_local: &str, insert: &str, part: &str) -> Result<String, ApplyError> {
    let close = text
        .rmatch_indices("</")
        .find(|(i, _)| {
            let tag = &text[i + 2..];
            let name_end = tag.find(|c: char| c == '>' || c.is_whitespace()).unwrap_or(tag.len());
            let name = &tag[..name_end];
            name.rsplit(':').next() == Some(root_local)
        })
        .map(|(i, _)| i);
    if let Some(close) = close {
        return Ok(format!("{}{insert}{}", &text[..close], &text[close..]));
    }
    // An empty root (`<Properties … />`): opened, given the content, closed.
    let end = text.rfind("/>").ok_or_else(|| bad(format!("{part}: no {root_local} element")))?;
    let start = text[..end].rfind('<').ok_or_else(|| bad(format!("{part}: no {root_local} element")))?;
    let tag = &text[start + 1..end];
    let qualified = tag.split(|c: char| c.is_whitespace()).next().unwrap_or("");
    if qualified.rsplit(':').next() != Some(root_local) {
        return Err(bad(format!("{part}: no closing {root_local} tag")));
    }
    Ok(format!("{}>{insert}</{qualified}>{}", text[..end].trim_end(), &text[end + 2..]))
}

/// The label as custom properties, pids from `first_pid`, in Office's order.
fn label_properties(label: &NewLabel, first_pid: u32, property: &str, vt: &str) -> String {
    let prefix = format!("MSIP_Label_{}_", label.id);
    let values = [
        ("Enabled", "true".to_string()),
        ("SetDate", label.set_date.clone()),
        ("Method", "Standard".to_string()),
        ("Name", label.name.clone()),
        ("SiteId", label.tenant.clone()),
        ("ActionId", label.action_id.clone()),
        ("ContentBits", "0".to_string()),
    ];
    let mut out = String::new();
    for (i, (key, value)) in values.iter().enumerate() {
        out.push_str(&format!(
            "<{property} fmtid=\"{FMTID}\" pid=\"{}\" name=\"{prefix}{key}\"><{vt}lpwstr{}>{}</{vt}lpwstr></{property}>",
            first_pid + i as u32,
            if vt.is_empty() { format!(" xmlns=\"{NS_VT}\"") } else { String::new() },
            escape(value)
        ));
    }
    out
}

/// The custom properties part with the label: `existing` (the part's text) minus the label
/// properties of `tenant`'s labels, plus the new label's.
fn custom_properties(existing: Option<&str>, label: &NewLabel) -> Result<String, ApplyError> {
    let Some(text) = existing else {
        return Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<Properties xmlns=\"{NS_CUSTOM}\" xmlns:vt=\"{NS_VT}\">{}</Properties>",
            label_properties(label, 2, "property", "vt:")
        ));
    };
    // Spans of each top-level property element, its name, and its value's text.
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut root: Option<(String, Option<String>)> = None; // (prefix of the root, vt prefix)
    let mut props: Vec<(usize, usize, String, String)> = Vec::new();
    let mut current: Option<(usize, String, String)> = None;
    let mut max_pid = 1u32;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| bad(format!("custom properties: {e}")))?;
        match event {
            event @ (Event::Start(_) | Event::Empty(_)) => {
                let is_empty = matches!(event, Event::Empty(_));
                let (Event::Start(e) | Event::Empty(e)) = event else { continue };
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if depth == 0 {
                    let prefix = name.rsplit_once(':').map(|(p, _)| p.to_string()).unwrap_or_default();
                    let mut vt = None;
                    for a in e.attributes().flatten() {
                        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        if a.value.as_ref() == NS_VT.as_bytes() {
                            vt = Some(key.strip_prefix("xmlns:").map(str::to_string).unwrap_or_default());
                        }
                    }
                    root = Some((prefix, vt));
                } else if depth == 1 && name.rsplit(':').next() == Some("property") {
                    let mut prop_name = String::new();
                    for a in e.attributes().flatten() {
                        let value = a.unescape_value().map_err(|e| bad(format!("custom properties: {e}")))?;
                        match a.key.as_ref() {
                            b"name" => prop_name = value.into_owned(),
                            b"pid" => max_pid = max_pid.max(value.trim().parse().unwrap_or(0)),
                            _ => {}
                        }
                    }
                    current = Some((before, prop_name, String::new()));
                }
                if is_empty {
                    // An empty element: no depth change.
                    if depth == 1 {
                        if let Some((start, name, value)) = current.take() {
                            props.push((start, reader.buffer_position() as usize, name, value));
                        }
                    }
                } else {
                    depth += 1;
                }
            }
            Event::Text(t) if current.is_some() => {
                if let (Some((_, _, value)), Ok(s)) = (current.as_mut(), t.decode()) {
                    value.push_str(&s);
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    if let Some((start, name, value)) = current.take() {
                        props.push((start, reader.buffer_position() as usize, name, value));
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let (root_prefix, vt) = root.ok_or_else(|| bad("custom properties: no root element"))?;
    // The labels of the new label's tenant (by their SiteId property) are replaced.
    let tenant_of = |guid: &str| {
        props
            .iter()
            .find(|(_, _, n, _)| n.eq_ignore_ascii_case(&format!("MSIP_Label_{guid}_SiteId")))
            .map(|(_, _, _, v)| v.trim().to_ascii_lowercase())
    };
    let mut out = String::with_capacity(text.len() + 1024);
    let mut at = 0;
    for (start, end, name, _) in &props {
        let guid = name.strip_prefix("MSIP_Label_").and_then(|rest| rest.get(..36));
        let replace = guid
            .is_some_and(|g| g.eq_ignore_ascii_case(&label.id) || tenant_of(g).is_none_or(|t| t.trim_matches(['{', '}']) == label.tenant));
        if replace {
            out.push_str(&text[at..*start]);
            at = *end;
        }
    }
    out.push_str(&text[at..]);
    let property = if root_prefix.is_empty() { "property".to_string() } else { format!("{root_prefix}:property") };
    let vt = match vt {
        Some(p) if p.is_empty() => String::new(),
        Some(p) => format!("{p}:"),
        None => String::new(),
    };
    let first_pid =
        max_pid.checked_add(1).filter(|p| p.checked_add(7).is_some()).ok_or_else(|| bad("custom properties: no property id left"))?;
    before_close(&out, "Properties", &label_properties(label, first_pid, &property, &vt), "custom properties")
}

/// The LabelInfo part with the label: other tenants' entries kept, this tenant's replaced.
fn label_info(text: &str, label: &NewLabel) -> Result<String, ApplyError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut drop_spans = Vec::new();
    let mut prefix = String::new();
    let mut depth = 0usize;
    // A label element being dropped: where it starts and the depth it opened at.
    let mut open: Option<(usize, usize)> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| bad(format!("LabelInfo: {e}")))?;
        let is_empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name.rsplit(':').next() == Some("labelList") {
                    prefix = name.rsplit_once(':').map(|(p, _)| format!("{p}:")).unwrap_or_default();
                }
                if open.is_none() && name.rsplit(':').next() == Some("label") {
                    let attr = |key: &[u8]| {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == key)
                            .and_then(|a| a.unescape_value().ok().map(|v| v.trim().trim_matches(['{', '}']).to_ascii_lowercase()))
                    };
                    let (site, id) = (attr(b"siteId"), attr(b"id"));
                    if site.as_deref().is_none_or(|s| s == label.tenant) || id.as_deref() == Some(label.id.as_str()) {
                        if is_empty {
                            drop_spans.push((before, reader.buffer_position() as usize));
                        } else {
                            open = Some((before, depth));
                        }
                    }
                }
                if !is_empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some((start, at)) = open {
                    if depth == at {
                        drop_spans.push((start, reader.buffer_position() as usize));
                        open = None;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (start, end) in drop_spans {
        if start >= at {
            out.push_str(&text[at..start]);
            at = end;
        }
    }
    out.push_str(&text[at..]);
    let entry = format!(
        "<{prefix}label id=\"{{{}}}\" enabled=\"1\" method=\"Standard\" siteId=\"{{{}}}\" contentBits=\"0\" removed=\"0\" />",
        label.id, label.tenant
    );
    before_close(&out, "labelList", &entry, "LabelInfo")
}

/// The edits that label the package.
pub(crate) fn edits(file: &(impl zip::Source + ?Sized), archive: &Archive, label: &NewLabel) -> Result<Edits, ApplyError> {
    let mut edits = Edits { replaced: Vec::new(), added: Vec::new() };
    let rels_member = find(archive, "_rels/.rels").ok_or_else(|| bad("no package relationships (_rels/.rels)"))?;
    let rels_text = utf8(zip::content(file, rels_member)?, "_rels/.rels")?;
    let rels = relationships(&rels_text)?;
    let target_of = |kind: &str| -> Vec<String> {
        rels.iter().filter(|(_, t, _)| t == kind).map(|(_, _, target)| target.trim_start_matches('/').to_string()).collect()
    };
    let custom_targets = target_of(REL_CUSTOM);
    if custom_targets.len() > 1 {
        return Err(bad("two custom properties relationships"));
    }
    match custom_targets.first() {
        Some(target) => {
            let member = find(archive, target).ok_or_else(|| bad(format!("the custom properties part {target} is missing")))?;
            let text = utf8(zip::content(file, member)?, target)?;
            edits.replaced.push((member.name.clone(), custom_properties(Some(&text), label)?.into_bytes()));
        }
        None => {
            let part = "docProps/custom.xml";
            if find(archive, part).is_some() {
                return Err(bad("docProps/custom.xml exists but no relationship names it"));
            }
            edits.added.push((part.to_string(), custom_properties(None, label)?.into_bytes()));
            let mut n = rels.len() + 1;
            while rels.iter().any(|(id, _, _)| *id == format!("rId{n}")) {
                n += 1;
            }
            let rel = format!("<Relationship Id=\"rId{n}\" Type=\"{REL_CUSTOM}\" Target=\"{part}\"/>");
            edits.replaced.push((rels_member.name.clone(), before_close(&rels_text, "Relationships", &rel, "_rels/.rels")?.into_bytes()));
            let types_member = find(archive, "[Content_Types].xml").ok_or_else(|| bad("no [Content_Types].xml"))?;
            let types = utf8(zip::content(file, types_member)?, "[Content_Types].xml")?;
            let lower = types.to_ascii_lowercase();
            if !lower.contains("partname=\"/docprops/custom.xml\"") && !lower.contains("partname='/docprops/custom.xml'") {
                let over = format!("<Override PartName=\"/{part}\" ContentType=\"{CT_CUSTOM}\"/>");
                edits.replaced.push((types_member.name.clone(), before_close(&types, "Types", &over, "[Content_Types].xml")?.into_bytes()));
            }
        }
    }
    for target in target_of(REL_LABELINFO) {
        if let Some(member) = find(archive, &target) {
            let text = utf8(zip::content(file, member)?, &target)?;
            edits.replaced.push((member.name.clone(), label_info(&text, label)?.into_bytes()));
        }
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> NewLabel {
        NewLabel {
            id: "9fbde396-1a24-4c79-8edf-9254a0f35055".into(),
            name: "Confidential & Finance".into(),
            tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            set_date: "2026-11-30T18:00:00Z".into(),
            action_id: "00000000-0000-4000-8000-000000000001".into(),
        }
    }

    #[test]
    fn a_label_of_the_same_tenant_is_replaced_and_others_stay() {
        let text = r#"<?xml version="1.0"?><Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Enabled"><vt:lpwstr>true</vt:lpwstr></property><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="3" name="MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_SiteId"><vt:lpwstr>72f988bf-86f1-41af-91ab-2d7cd011db47</vt:lpwstr></property><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="4" name="MSIP_Label_11111111-8706-4288-bd11-ebb85995028c_SiteId"><vt:lpwstr>aaaaaaaa-86f1-41af-91ab-2d7cd011db47</vt:lpwstr></property><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="9" name="Sensitivity"><vt:lpwstr>General</vt:lpwstr></property></Properties>"#;
        let out = custom_properties(Some(text), &label()).unwrap();
        assert!(!out.contains("f42aa342"), "{out}");
        assert!(out.contains("MSIP_Label_11111111-8706-4288-bd11-ebb85995028c_SiteId"), "another tenant's label stays");
        assert!(out.contains(r#"pid="9" name="Sensitivity""#));
        assert!(
            out.contains(r#"pid="10" name="MSIP_Label_9fbde396-1a24-4c79-8edf-9254a0f35055_Enabled"><vt:lpwstr>true</vt:lpwstr>"#),
            "{out}"
        );
        assert!(out.contains("<vt:lpwstr>Confidential &amp; Finance</vt:lpwstr>"));
        assert!(out.ends_with("</property></Properties>"));
    }

    #[test]
    fn empty_roots_and_labels_with_children() {
        let out = custom_properties(Some(r#"<?xml version="1.0"?><op:Properties xmlns:op="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" />"#), &label()).unwrap();
        assert!(out.contains("<op:property fmtid="), "{out}");
        assert!(out.ends_with("</op:Properties>"), "{out}");
        let info = r#"<clbl:labelList xmlns:clbl="http://schemas.microsoft.com/office/2020/mipLabelMetadata"><clbl:label id="{f42aa342-8706-4288-bd11-ebb85995028c}" siteId="{72f988bf-86f1-41af-91ab-2d7cd011db47}"><clbl:x><clbl:y/></clbl:x></clbl:label></clbl:labelList>"#;
        let out = label_info(info, &label()).unwrap();
        assert!(!out.contains("clbl:x") && !out.contains("f42aa342"), "{out}");
        assert!(quick_xml::Reader::from_str(&out).read_event().is_ok());
        let out =
            label_info(r#"<clbl:labelList xmlns:clbl="http://schemas.microsoft.com/office/2020/mipLabelMetadata"/>"#, &label()).unwrap();
        assert!(out.ends_with("removed=\"0\" /></clbl:labelList>"), "{out}");
        let huge = r#"<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"><property fmtid="x" pid="4294967295" name="a"/></Properties>"#;
        assert!(custom_properties(Some(huge), &label()).is_err(), "no pid wraps");
    }

    #[test]
    fn label_info_keeps_other_tenants() {
        let text = r#"<?xml version="1.0" encoding="utf-8" standalone="yes"?><clbl:labelList xmlns:clbl="http://schemas.microsoft.com/office/2020/mipLabelMetadata"><clbl:label id="{f42aa342-8706-4288-bd11-ebb85995028c}" enabled="1" method="Privileged" siteId="{72f988bf-86f1-41af-91ab-2d7cd011db47}" removed="0" /><clbl:label id="{11111111-8706-4288-bd11-ebb85995028c}" enabled="1" method="Standard" siteId="{aaaaaaaa-86f1-41af-91ab-2d7cd011db47}" removed="0"></clbl:label></clbl:labelList>"#;
        let out = label_info(text, &label()).unwrap();
        assert!(!out.contains("f42aa342"));
        assert!(out.contains("11111111"));
        assert!(out.contains(r#"<clbl:label id="{9fbde396-1a24-4c79-8edf-9254a0f35055}" enabled="1" method="Standard" siteId="{72f988bf-86f1-41af-91ab-2d7cd011db47}" contentBits="0" removed="0" /></clbl:labelList>"#), "{out}");
    }
}
