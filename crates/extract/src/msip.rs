//! The `MSIP_Label_<guid>_<Attribute>` key grammar shared by every container (label-formats.md
//! §1): key matching, GUID and boolean normalisation, and grouping of key/value pairs into one
//! record per label.

use crate::model::{Extraction, LabelRecord, RecordStatus, Source};

const PREFIX: &str = "msip_label_";

/// Strips braces and whitespace, lowercases, and validates the `8-4-4-4-12` hex form.
pub(crate) fn normalize_guid(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let inner = trimmed.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(trimmed);
    let bytes = inner.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    for (i, b) in bytes.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*b == b'-') || (!dash && !b.is_ascii_hexdigit()) {
            return None;
        }
    }
    Some(inner.to_ascii_lowercase())
}

/// `true`/`1` and `false`/`0`, ASCII case-insensitive, surrounding whitespace ignored.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    let v = raw.trim();
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// True when `key` starts with `MSIP_Label_` in any case.
pub(crate) fn is_msip_key(key: &str) -> bool {
    key.len() >= PREFIX.len() && key.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
}

#[derive(Default)]
struct Group {
    id: String,
    enabled_raw: Option<String>,
    site_id: Option<String>,
    method: Option<String>,
    name: Option<String>,
    content_bits: Option<u32>,
    set_date: Option<String>,
    parent: Option<String>,
}

/// Collects `MSIP_Label_*` key/value pairs from one location and turns them into records.
pub(crate) struct PropertyCollector {
    source: Source,
    groups: Vec<Group>,
    max_records: usize,
}

impl PropertyCollector {
    pub(crate) fn new(source: Source, max_records: usize) -> PropertyCollector {
        PropertyCollector { source, groups: Vec::new(), max_records }
    }

    /// Offers one key/value pair; keys that are not `MSIP_Label_*` are ignored.
    pub(crate) fn add(&mut self, key: &str, value: &str, ex: &mut Extraction) {
        let key = key.trim();
        if !is_msip_key(key) {
            return;
        }
        let rest = &key[PREFIX.len()..];
        let (guid_part, attr) = match (rest.get(..36), rest.get(36..)) {
            (Some(g), Some(a)) if a.starts_with('_') => (g, &a[1..]),
            _ => {
                ex.ambiguous(format!("{}: MSIP_Label_ key without a valid label GUID: {:?}", self.source, truncate(key)));
                return;
            }
        };
        let Some(id) = normalize_guid(guid_part) else {
            ex.ambiguous(format!("{}: MSIP_Label_ key without a valid label GUID: {:?}", self.source, truncate(key)));
            return;
        };
        let value = value.trim();
        let index = match self.groups.iter().position(|g| g.id == id) {
            Some(i) => i,
            None => {
                if self.groups.len() >= self.max_records {
                    ex.ambiguous(format!("{}: more than {} label groups; the rest were not read", self.source, self.max_records));
                    return;
                }
                self.groups.push(Group { id, ..Group::default() });
                self.groups.len() - 1
            }
        };
        let source = self.source;
        let group = &mut self.groups[index];
        let is = |name: &str| attr.eq_ignore_ascii_case(name);
        // A repeated attribute keeps its first value. Only disagreements that change the decision
        // (Enabled, SiteId) are ambiguous: ActionId, SetDate and the like legitimately differ
        // between a combined header and per-attribute headers.
        let conflict = if is("enabled") {
            match &group.enabled_raw {
                Some(previous) => parse_bool(previous) != parse_bool(value),
                None => {
                    group.enabled_raw = Some(value.to_string());
                    false
                }
            }
        } else if is("siteid") || is("ref") {
            match (normalize_guid(value), &group.site_id) {
                (Some(site), Some(previous)) => site != *previous,
                (Some(site), None) => {
                    group.site_id = Some(site);
                    false
                }
                (None, _) if value.is_empty() => false,
                (None, _) => {
                    ex.ambiguous(format!("{source}: label {} has a SiteId that is not a GUID", group.id));
                    false
                }
            }
        } else {
            let slot = if is("method") {
                &mut group.method
            } else if is("name") {
                &mut group.name
            } else if is("setdate") || is("datecreated") {
                &mut group.set_date
            } else if is("contentbits") {
                if group.content_bits.is_none() {
                    group.content_bits = value.parse().ok();
                }
                return;
            } else if is("parent") {
                if group.parent.is_none() {
                    group.parent = normalize_guid(value);
                }
                return;
            } else {
                return;
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.to_string());
            }
            false
        };
        if conflict {
            ex.ambiguous(format!("{source}: property {} is stated twice with different values", truncate(key)));
        }
    }

    /// The records, with their base status (precedence between locations is applied later).
    pub(crate) fn finish(self, ex: &mut Extraction) -> Vec<LabelRecord> {
        let source = self.source;
        self.groups
            .into_iter()
            .map(|g| {
                let (enabled, status) = match g.enabled_raw.as_deref() {
                    None => (None, RecordStatus::Incomplete),
                    Some(raw) => match parse_bool(raw) {
                        Some(true) => (Some(true), RecordStatus::Effective),
                        Some(false) => (Some(false), RecordStatus::Disabled),
                        None => {
                            ex.ambiguous(format!(
                                "{source}: label {} has an Enabled value that is not a boolean: {:?}",
                                g.id,
                                truncate(raw)
                            ));
                            (None, RecordStatus::Malformed)
                        }
                    },
                };
                LabelRecord {
                    id: g.id,
                    site_id: g.site_id,
                    enabled,
                    removed: false,
                    method: g.method,
                    name: g.name,
                    content_bits: g.content_bits,
                    set_date: g.set_date,
                    parent: g.parent,
                    source,
                    status,
                }
            })
            .collect()
    }
}

/// Applies MS-OFFCRYPTO 2.6.3 precedence: for every tenant that the LabelInfo location describes
/// (including removed tombstones), property records of that tenant are stale. Property records
/// without a SiteId keep their status (tenant unknown: fail closed).
pub(crate) fn apply_labelinfo_precedence(records: &mut [LabelRecord]) {
    let tenants: Vec<String> =
        records.iter().filter(|r| matches!(r.source, Source::LabelInfo | Source::CfbLabelInfo)).filter_map(|r| r.site_id.clone()).collect();
    for record in records.iter_mut() {
        if matches!(record.source, Source::CustomProps | Source::OleProps) {
            if let Some(site) = &record.site_id {
                if tenants.contains(site) {
                    record.status = RecordStatus::Stale;
                }
            }
        }
    }
}

pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileKind;

    #[test]
    fn guid_normalisation() {
        assert_eq!(normalize_guid("{F42AA342-8706-4288-BD11-EBB85995028C}").as_deref(), Some("f42aa342-8706-4288-bd11-ebb85995028c"));
        assert_eq!(normalize_guid("f42aa342-8706-4288-bd11-ebb85995028"), None);
        assert_eq!(normalize_guid("f42aa342x8706-4288-bd11-ebb85995028c"), None);
        assert_eq!(normalize_guid("g42aa342-8706-4288-bd11-ebb85995028c"), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool(" True "), Some(true));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("FALSE"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn grouping_is_case_insensitive_and_flags_conflicts() {
        let mut ex = Extraction::new(FileKind::Docx);
        let mut c = PropertyCollector::new(Source::CustomProps, 16);
        c.add("msip_label_F42AA342-8706-4288-BD11-EBB85995028C_ENABLED", "true", &mut ex);
        c.add("MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_SiteId", "{72F988BF-86F1-41AF-91AB-2D7CD011DB47}", &mut ex);
        c.add("Sensitivity", "General", &mut ex);
        let records = c.finish(&mut ex);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, "f42aa342-8706-4288-bd11-ebb85995028c");
        assert_eq!(records[0].site_id.as_deref(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert_eq!(records[0].status, RecordStatus::Effective);
        assert!(ex.flags.is_empty());

        let mut c = PropertyCollector::new(Source::CustomProps, 16);
        c.add("MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Enabled", "true", &mut ex);
        c.add("MSIP_LABEL_f42aa342-8706-4288-bd11-ebb85995028c_enabled", "false", &mut ex);
        let _ = c.finish(&mut ex);
        assert!(ex.has_flag(crate::Flag::Ambiguous));
    }

    #[test]
    fn malformed_enabled_is_not_a_label_but_is_ambiguous() {
        let mut ex = Extraction::new(FileKind::Docx);
        let mut c = PropertyCollector::new(Source::CustomProps, 16);
        c.add("MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Enabled", "yes please", &mut ex);
        let records = c.finish(&mut ex);
        assert_eq!(records[0].status, RecordStatus::Malformed);
        assert!(ex.has_flag(crate::Flag::Ambiguous));
    }
}
