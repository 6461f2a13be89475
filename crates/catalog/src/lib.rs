//! `labelgate-catalog`: what labelgate knows about sensitivity labels — their names, priorities,
//! parents and tenants — as an immutable [`Catalog`] snapshot, and the [`LabelCache`] that the hot
//! path reads without locks while the sync task (or a config reload) publishes new snapshots.
//!
//! ```
//! use labelgate_catalog::{Catalog, Label, LabelCache};
//!
//! let mut parent = Label::new("f5dc2dea-db0f-47cd-8b20-a52e1590fb64", "Highly Confidential");
//! parent.priority = 10;
//! let mut child = Label::new("{F74878B7-C0FF-44A4-82FF-8CE29F7FCCB5}", "Finance");
//! child.parent = Some(parent.id.clone());
//! child.priority = 11;
//! let cache = LabelCache::new(Catalog::from_static(vec![parent, child]));
//! let snapshot = cache.load();
//! let found = snapshot.by_name(None, "highly confidential \\ finance");
//! assert_eq!(found[0].id, "f74878b7-c0ff-44a4-82ff-8ce29f7fccb5");
//! assert_eq!(snapshot.ancestors(found[0]).count(), 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use arc_swap::{ArcSwap, Guard};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Where a label definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelOrigin {
    /// A `[[labels]]` entry of the config file.
    Static,
    /// Retrieved from Microsoft Graph through a MIP account.
    Graph,
}

/// A sensitivity label as labelgate knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Label GUID, lowercase, without braces.
    pub id: String,
    /// Graph's `name` (the label's own name, not its path).
    pub name: String,
    /// Graph's `displayName` where present, else `name`.
    pub display_name: String,
    /// Description for admins.
    pub description: Option<String>,
    /// Tooltip shown to users.
    pub tooltip: Option<String>,
    /// Colour (`#rrggbb`) when set.
    pub color: Option<String>,
    /// Normalised so that higher means more sensitive (see [`priority_from_sensitivity`] and
    /// [`priority_from_v1`]).
    pub priority: i64,
    /// Parent label id for a sublabel.
    pub parent: Option<String>,
    /// Whether the label is active (deleted or disabled labels stay known).
    pub is_active: bool,
    /// Whether applying it encrypts content.
    pub has_protection: bool,
    /// Content formats it applies to (`file`, `email`, …).
    pub content_formats: Vec<String>,
    /// The MIP account it was retrieved through.
    pub account: Option<String>,
    /// The tenant (Entra directory) it belongs to, lowercase GUID.
    pub tenant: Option<String>,
    /// No longer returned by Graph (kept so that files carrying it are still recognised).
    pub deleted: bool,
    /// Where it came from.
    pub origin: LabelOrigin,
}

impl Label {
    /// A minimal active label; `id` is normalised (lowercase, no braces).
    pub fn new(id: &str, name: &str) -> Label {
        Label {
            id: normalize_id(id),
            name: name.to_string(),
            display_name: name.to_string(),
            description: None,
            tooltip: None,
            color: None,
            priority: 0,
            parent: None,
            is_active: true,
            has_protection: false,
            content_formats: Vec::new(),
            account: None,
            tenant: None,
            deleted: false,
            origin: LabelOrigin::Static,
        }
    }
}

/// Lowercase, braces and surrounding whitespace removed: the form label ids are compared in.
pub fn normalize_id(id: &str) -> String {
    let t = id.trim();
    t.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(t).to_ascii_lowercase()
}

/// Graph beta `sensitivity`: lower means less sensitive, so it is the priority as is.
pub fn priority_from_sensitivity(sensitivity: i32) -> i64 {
    i64::from(sensitivity)
}

/// Graph v1.0 `priority`: lower means higher priority (more sensitive), so it is inverted.
pub fn priority_from_v1(priority: i32) -> i64 {
    -i64::from(priority)
}

/// Parses a GUID (`8-4-4-4-12` hex, optional braces, any case) into its 128-bit value.
pub fn parse_guid(s: &str) -> Option<u128> {
    let t = s.trim();
    let t = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(t);
    let b: &[u8; 36] = t.as_bytes().try_into().ok()?;
    if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    // A table lookup per digit, validity folded into one flag, two u64 halves (a 128-bit shift
    // costs several instructions, a 64-bit one costs one): ~5 instructions a digit.
    const HEX: [u8; 256] = {
        let mut t = [0xFFu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let mut bad = 0u8;
    let mut half = |digits: &[u8]| {
        digits.iter().fold(0u64, |acc, &c| {
            let d = HEX[c as usize];
            bad |= d;
            (acc << 4) | u64::from(d & 0x0F)
        })
    };
    let (g1, g2, g3, g4, g5) = (&b[0..8], &b[9..13], &b[14..18], &b[19..23], &b[24..36]);
    let hi = (half(g1) << 32) | (half(g2) << 16) | half(g3);
    let lo = (half(g4) << 48) | half(g5);
    // Valid digits are < 0x10, so any 0xFF from the table shows in the high nibble.
    (bad & 0xF0 == 0).then_some((u128::from(hi) << 64) | u128::from(lo))
}

/// Hashes GUID keys by folding their bits: they are already uniformly random, and the maps hold
/// only trusted keys (config and Graph), so a keyed hash buys nothing on the hot path.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuidHasher(u64);

impl std::hash::Hasher for GuidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut a = [0u8; 8];
            a[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(a)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (self.0.rotate_left(23) ^ (v as u64) ^ ((v >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Map keyed by GUIDs with [`GuidHasher`].
pub type GuidMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<GuidHasher>>;

/// An immutable set of labels with the indexes the hot path needs.
#[derive(Debug, Default)]
pub struct Catalog {
    labels: Vec<Arc<Label>>,
    by_tenant_id: GuidMap<(u128, u128), usize>,
    by_id: GuidMap<u128, usize>,
    by_name: HashMap<(Option<String>, String), Vec<usize>>,
    tenants: Vec<String>,
    /// Index of each label's parent (same tenant first), resolved once at build.
    parent_of: Vec<Option<usize>>,
}

/// Folds a name for case-insensitive lookups, normalising the `Parent \ Child` separator.
fn fold_name(name: &str) -> String {
    name.split('\\').map(|p| p.trim().to_lowercase()).collect::<Vec<_>>().join(" \\ ")
}

impl Catalog {
    /// A catalog of static labels only.
    pub fn from_static(labels: Vec<Label>) -> Catalog {
        Catalog::build(labels, Vec::new())
    }

    /// Builds a snapshot: static labels first, then Graph labels, which override a static label
    /// with the same id (and tenant, when the static one names none or the same).
    pub fn build(static_labels: Vec<Label>, graph_labels: Vec<Label>) -> Catalog {
        let mut labels: Vec<Label> = Vec::with_capacity(static_labels.len() + graph_labels.len());
        for mut l in graph_labels {
            l.id = normalize_id(&l.id);
            l.tenant = l.tenant.map(|t| normalize_id(&t));
            l.origin = LabelOrigin::Graph;
            labels.push(l);
        }
        for mut l in static_labels {
            l.id = normalize_id(&l.id);
            l.tenant = l.tenant.map(|t| normalize_id(&t));
            let overridden =
                labels.iter().any(|g| g.origin == LabelOrigin::Graph && g.id == l.id && (l.tenant.is_none() || l.tenant == g.tenant));
            if !overridden {
                labels.push(l);
            }
        }
        let mut catalog = Catalog { labels: labels.into_iter().map(Arc::new).collect(), ..Catalog::default() };
        for (i, l) in catalog.labels.iter().enumerate() {
            let id = parse_guid(&l.id);
            if let Some(t) = &l.tenant {
                if let (Some(t), Some(id)) = (parse_guid(t), id) {
                    catalog.by_tenant_id.entry((t, id)).or_insert(i);
                }
                if !catalog.tenants.contains(t) {
                    catalog.tenants.push(t.clone());
                }
            }
            if let Some(id) = id {
                catalog.by_id.entry(id).or_insert(i);
            }
        }
        catalog.parent_of = catalog
            .labels
            .iter()
            .map(|l| {
                let pid = parse_guid(l.parent.as_deref()?)?;
                let tenant = l.tenant.as_deref().and_then(parse_guid);
                tenant.and_then(|t| catalog.by_tenant_id.get(&(t, pid)).copied()).or_else(|| catalog.by_id.get(&pid).copied())
            })
            .collect();
        // Names: the label's own display name and name, and its full path through its parents.
        for i in 0..catalog.labels.len() {
            let l = Arc::clone(&catalog.labels[i]);
            let mut names = vec![fold_name(&l.display_name), fold_name(&l.name)];
            let path: Vec<String> = catalog.ancestors(&l).map(|a| a.display_name.clone()).collect();
            if !path.is_empty() {
                let mut full: Vec<String> = path.into_iter().rev().collect();
                full.push(l.display_name.clone());
                names.push(fold_name(&full.join(" \\ ")));
            }
            names.sort();
            names.dedup();
            for n in names {
                catalog.by_name.entry((l.account.clone(), n.clone())).or_default().push(i);
                if l.account.is_some() {
                    catalog.by_name.entry((None, n)).or_default().push(i);
                }
            }
        }
        catalog
    }

    /// The label with this id in this tenant, falling back to the id alone (the first label
    /// with that id) when the tenant is unknown or has no such label.
    pub fn lookup(&self, tenant: Option<&str>, id: &str) -> Option<&Label> {
        self.lookup_guid(tenant.and_then(parse_guid), parse_guid(id)?)
    }

    /// As [`lookup`](Self::lookup), with GUIDs already parsed ([`parse_guid`]).
    pub fn lookup_guid(&self, tenant: Option<u128>, id: u128) -> Option<&Label> {
        if let Some(&i) = tenant.and_then(|t| self.by_tenant_id.get(&(t, id))) {
            return Some(&self.labels[i]);
        }
        self.by_id.get(&id).map(|&i| &*self.labels[i])
    }

    /// Labels whose display name, name or `Parent \ Child` path equals `name` (case-insensitive),
    /// within one account or across all (`None`).
    pub fn by_name(&self, account: Option<&str>, name: &str) -> Vec<&Label> {
        self.by_name
            .get(&(account.map(str::to_string), fold_name(name)))
            .map(|v| v.iter().map(|&i| &*self.labels[i]).collect())
            .unwrap_or_default()
    }

    /// The parent chain of a label, nearest first (bounded: a cycle in bad data ends it).
    pub fn ancestors<'a>(&'a self, label: &Label) -> impl Iterator<Item = &'a Label> + 'a {
        // Start from this catalog's copy of the label (by identity of id and tenant).
        let start = parse_guid(&label.id).and_then(|id| {
            let tenant = label.tenant.as_deref().and_then(parse_guid);
            tenant.and_then(|t| self.by_tenant_id.get(&(t, id)).copied()).or_else(|| self.by_id.get(&id).copied())
        });
        let mut next = start.and_then(|i| self.parent_of.get(i).copied().flatten());
        let mut steps = 0;
        std::iter::from_fn(move || {
            steps += 1;
            if steps > 16 {
                return None;
            }
            let i = next?;
            next = self.parent_of.get(i).copied().flatten();
            Some(&*self.labels[i])
        })
    }

    /// True when `label` is `ancestor` or one of its sublabels (at any depth).
    pub fn is_within(&self, label: &Label, ancestor_id: &str) -> bool {
        label.id == ancestor_id || self.ancestors(label).any(|a| a.id == ancestor_id)
    }

    /// Every label, in build order.
    pub fn labels(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter().map(|l| &**l)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Tenants that labels name.
    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }
}

/// The label cache the hot path reads: a lookup loads the current snapshot without waiting for
/// any writer; a writer replaces one source's labels and publishes a whole new snapshot, so
/// readers see the old set or the new one, never a mix.
#[derive(Debug)]
pub struct LabelCache {
    current: ArcSwap<Catalog>,
    sources: Mutex<Sources>,
}

#[derive(Debug, Default)]
struct Sources {
    static_labels: Vec<Label>,
    accounts: HashMap<String, Vec<Label>>,
}

impl LabelCache {
    /// A cache holding `initial` (its labels become the static source).
    pub fn new(initial: Catalog) -> LabelCache {
        let static_labels = initial.labels().filter(|l| l.origin == LabelOrigin::Static).cloned().collect();
        let accounts =
            initial.labels().filter(|l| l.origin == LabelOrigin::Graph).fold(HashMap::<String, Vec<Label>>::new(), |mut m, l| {
                m.entry(l.account.clone().unwrap_or_default()).or_default().push(l.clone());
                m
            });
        LabelCache { current: ArcSwap::from_pointee(initial), sources: Mutex::new(Sources { static_labels, accounts }) }
    }

    /// The current snapshot (wait-free for readers).
    pub fn load(&self) -> Guard<Arc<Catalog>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc` (to keep across awaits).
    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Replaces one account's labels and publishes a new snapshot.
    pub fn replace_account(&self, account: &str, labels: Vec<Label>) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let labels = labels
            .into_iter()
            .map(|mut l| {
                l.account = Some(account.to_string());
                l
            })
            .collect();
        sources.accounts.insert(account.to_string(), labels);
        self.publish(&sources);
    }

    /// Drops an account's labels and publishes a new snapshot.
    pub fn remove_account(&self, account: &str) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.accounts.remove(account);
        self.publish(&sources);
    }

    /// Replaces the static (`[[labels]]`) labels and publishes a new snapshot.
    pub fn replace_static(&self, labels: Vec<Label>) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.static_labels = labels;
        self.publish(&sources);
    }

    fn publish(&self, sources: &Sources) {
        let mut accounts: Vec<&String> = sources.accounts.keys().collect();
        accounts.sort();
        let graph = accounts.into_iter().flat_map(|a| sources.accounts[a].iter().cloned()).collect();
        self.current.store(Arc::new(Catalog::build(sources.static_labels.clone(), graph)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(id: &str, name: &str, parent: Option<&str>, tenant: Option<&str>) -> Label {
        let mut l = Label::new(id, name);
        l.parent = parent.map(normalize_id);
        l.tenant = tenant.map(str::to_string);
        l
    }

    const T1: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const T2: &str = "cb46c030-1825-4e81-a295-151c039dbf02";

    #[test]
    fn lookup_by_tenant_then_id() {
        let a = label("11111111-1111-1111-1111-111111111111", "General", None, Some(T1));
        let mut b = label("11111111-1111-1111-1111-111111111111", "Allgemein", None, Some(T2));
        b.priority = 5;
        let c = Catalog::from_static(vec![a, b]);
        assert_eq!(c.lookup(Some(T2), "11111111-1111-1111-1111-111111111111").map(|l| l.priority), Some(5));
        assert_eq!(c.lookup(Some(T1), "11111111-1111-1111-1111-111111111111").map(|l| l.name.as_str()), Some("General"));
        assert_eq!(c.lookup(None, "11111111-1111-1111-1111-111111111111").map(|l| l.name.as_str()), Some("General"));
        assert!(c.lookup(None, "22222222-2222-2222-2222-222222222222").is_none());
        assert_eq!(c.tenants().len(), 2);
    }

    #[test]
    fn names_paths_and_ancestors() {
        let p = label("aaaaaaaa-0000-0000-0000-000000000000", "Confidential", None, Some(T1));
        let c1 = label("bbbbbbbb-0000-0000-0000-000000000000", "Finance", Some("{AAAAAAAA-0000-0000-0000-000000000000}"), Some(T1));
        let c = Catalog::from_static(vec![p, c1]);
        let f = c.by_name(None, "CONFIDENTIAL\\finance");
        assert_eq!(f.len(), 1);
        assert_eq!(c.ancestors(f[0]).map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Confidential"]);
        assert!(c.is_within(f[0], "aaaaaaaa-0000-0000-0000-000000000000"));
        assert_eq!(c.by_name(None, "finance").len(), 1);
    }

    #[test]
    fn parent_cycles_end() {
        let a = label("aaaaaaaa-0000-0000-0000-000000000000", "A", Some("bbbbbbbb-0000-0000-0000-000000000000"), None);
        let b = label("bbbbbbbb-0000-0000-0000-000000000000", "B", Some("aaaaaaaa-0000-0000-0000-000000000000"), None);
        let c = Catalog::from_static(vec![a, b]);
        let a = c.lookup(None, "aaaaaaaa-0000-0000-0000-000000000000").expect("present");
        assert!(c.ancestors(a).count() <= 16);
    }

    #[test]
    fn graph_overrides_static_and_publishes_whole() {
        let cache = LabelCache::new(Catalog::from_static(vec![label("aaaaaaaa-0000-0000-0000-000000000000", "Static name", None, None)]));
        let mut g = label("aaaaaaaa-0000-0000-0000-000000000000", "Graph name", None, Some(T1));
        g.priority = priority_from_v1(3);
        cache.replace_account("contoso", vec![g]);
        let snap = cache.load();
        let l = snap.lookup(None, "aaaaaaaa-0000-0000-0000-000000000000").expect("present");
        assert_eq!(l.name, "Graph name");
        assert_eq!(l.origin, LabelOrigin::Graph);
        assert_eq!(l.account.as_deref(), Some("contoso"));
        assert_eq!(snap.len(), 1);
        assert_eq!(snap.by_name(Some("contoso"), "graph name").len(), 1);
        cache.remove_account("contoso");
        assert_eq!(cache.load().lookup(None, "aaaaaaaa-0000-0000-0000-000000000000").map(|l| l.name.as_str()), Some("Static name"));
    }

    #[test]
    fn guids_parse() {
        assert_eq!(parse_guid("{F42AA342-8706-4288-BD11-EBB85995028C}"), parse_guid("f42aa342-8706-4288-bd11-ebb85995028c"));
        assert_eq!(parse_guid("00000000-0000-0000-0000-00000000000a"), Some(10));
        assert_eq!(parse_guid("f42aa342-8706-4288-bd11-ebb85995028"), None);
        assert_eq!(parse_guid("f42aa342x8706-4288-bd11-ebb85995028c"), None);
    }

    #[test]
    fn priorities_normalise_to_higher_is_more_sensitive() {
        assert!(priority_from_sensitivity(9) > priority_from_sensitivity(1));
        assert!(priority_from_v1(0) > priority_from_v1(5));
    }

    #[test]
    fn readers_never_see_a_mixed_snapshot() {
        let cache = Arc::new(LabelCache::new(Catalog::default()));
        let ids: Vec<String> = (0..50).map(|i| format!("{i:08x}-0000-0000-0000-000000000000")).collect();
        let writer = {
            let cache = Arc::clone(&cache);
            let ids = ids.clone();
            std::thread::spawn(move || {
                for round in 0..200 {
                    let labels = ids.iter().map(|id| label(id, &format!("round-{round}"), None, None)).collect();
                    cache.replace_account("a", labels);
                }
            })
        };
        for _ in 0..2000 {
            let snap = cache.load();
            let names: std::collections::HashSet<&str> = snap.labels().map(|l| l.name.as_str()).collect();
            assert!(names.len() <= 1, "a snapshot mixed rounds: {names:?}");
        }
        writer.join().expect("writer finished");
    }
}

/// One `[[labels]]` entry: a label known without Graph (or before Graph is reached).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// Label GUID.
    pub id: toml::Spanned<String>,
    /// Name.
    pub name: toml::Spanned<String>,
    /// Display name (defaults to `name`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Parent label GUID for a sublabel.
    #[serde(default)]
    pub parent: Option<toml::Spanned<String>>,
    /// Higher means more sensitive.
    #[serde(default)]
    pub priority: i64,
    /// Tenant GUID.
    #[serde(default)]
    pub tenant: Option<toml::Spanned<String>>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tooltip.
    #[serde(default)]
    pub tooltip: Option<String>,
    /// Colour.
    #[serde(default)]
    pub color: Option<String>,
    /// Applying it encrypts content.
    #[serde(default)]
    pub has_protection: bool,
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// Turns `[[labels]]` entries into labels, with (byte span, message) for each invalid one.
pub fn labels_from_config(entries: &[LabelConfig]) -> (Vec<Label>, Vec<labelgate_diagnostics::Problem>) {
    let mut labels: Vec<Label> = Vec::new();
    let mut problems = Vec::new();
    for e in entries {
        let id = normalize_id(e.id.get_ref());
        if !is_guid(&id) {
            problems.push(labelgate_diagnostics::Problem::error(e.id.span(), format!("label id {:?} is not a GUID", e.id.get_ref())));
            continue;
        }
        let tenant = e.tenant.as_ref().map(|t| (t.span(), normalize_id(t.get_ref())));
        if let Some((span, t)) = &tenant {
            if !is_guid(t) {
                problems.push(labelgate_diagnostics::Problem::error(span.clone(), format!("tenant {t:?} is not a GUID")));
            }
        }
        if labels.iter().any(|l| l.id == id && l.tenant == tenant.as_ref().map(|(_, t)| t.clone())) {
            problems.push(labelgate_diagnostics::Problem::error(e.id.span(), format!("duplicate label id {id}")));
            continue;
        }
        let parent = e.parent.as_ref().map(|p| (p.span(), normalize_id(p.get_ref())));
        if let Some((span, p)) = &parent {
            if !is_guid(p) {
                problems.push(labelgate_diagnostics::Problem::error(span.clone(), format!("parent {p:?} is not a GUID")));
            }
        }
        let mut l = Label::new(&id, e.name.get_ref());
        l.display_name = e.display_name.clone().unwrap_or_else(|| e.name.get_ref().clone());
        l.parent = parent.map(|(_, p)| p);
        l.priority = e.priority;
        l.tenant = tenant.map(|(_, t)| t);
        l.description = e.description.clone();
        l.tooltip = e.tooltip.clone();
        l.color = e.color.clone();
        l.has_protection = e.has_protection;
        labels.push(l);
    }
    (labels, problems)
}

/// One CSV cell (the account labels download, `labelgate scan --format csv`): a value a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) is
/// prefixed with `'`; cells with a separator, quote or line break are quoted (RFC 4180).
pub fn csv_cell(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if neutral.contains([',', '"', '\r', '\n']) || neutral.starts_with(' ') || neutral.ends_with(' ') {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}
