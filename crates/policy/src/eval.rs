//! Compiled rules, label resolution against a catalog, and evaluation to a verdict.

use crate::config::{TenantScope, UnscannableConfig};
use crate::{Action, Direction, Policy, Problem, UnscannableReason};
use labelgate_catalog::{normalize_id, parse_guid, Catalog, GuidHasher};
use std::hash::BuildHasherDefault;

type GuidSet = HashSet<u128, BuildHasherDefault<GuidHasher>>;

/// FNV-1a for the short strings (hosts, suffixes) policy tables are keyed by. The tables hold
/// only configuration, so requests can probe them but never grow their chains.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<V> = std::collections::HashMap<String, V, BuildHasherDefault<Fnv>>;
use serde::Serialize;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

/// A label named in a rule: a GUID, or a name resolved against the catalog.
#[derive(Debug, Clone)]
pub(crate) enum LabelRef {
    Id(String),
    Name(String, Range<usize>),
}

impl LabelRef {
    pub(crate) fn parse(raw: &str, span: Range<usize>) -> LabelRef {
        let id = normalize_id(raw);
        let is_guid = id.len() == 36
            && id.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() });
        if is_guid {
            LabelRef::Id(id)
        } else {
            LabelRef::Name(raw.trim().to_string(), span)
        }
    }
}

/// A destination pattern: a host glob (`*.example.com`, `files.example.com`) or a URL prefix
/// (`https://example.com/upload`).
#[derive(Debug, Clone)]
pub(crate) enum DestPattern {
    Host(AppPattern),
    UrlPrefix(String),
}

/// A destination or host pattern of the config that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatternError {
    /// A URL prefix with another scheme.
    #[error("destination {0:?}: URL prefixes must start with http:// or https://")]
    UrlScheme(String),
    /// Neither a host name nor `*.domain`.
    #[error("host pattern {0:?} is not a host name or *.domain")]
    Host(String),
}

impl DestPattern {
    pub(crate) fn parse(raw: &str) -> Result<DestPattern, PatternError> {
        let t = raw.trim();
        if t.contains("://") {
            if !(t.starts_with("http://") || t.starts_with("https://")) {
                return Err(PatternError::UrlScheme(raw.to_string()));
            }
            return Ok(DestPattern::UrlPrefix(t.to_ascii_lowercase()));
        }
        AppPattern::parse(t).map(DestPattern::Host)
    }

    fn key(&self) -> String {
        match self {
            DestPattern::Host(p) => p.key(),
            DestPattern::UrlPrefix(u) => u.clone(),
        }
    }

    fn matches(&self, host: &str, url: &str) -> bool {
        match self {
            DestPattern::Host(p) => p.matches(host),
            DestPattern::UrlPrefix(prefix) => {
                url.len() >= prefix.len() && url.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
        }
    }
}

/// A host pattern: exact, or `*.` + suffix (any subdomain, not the bare domain).
#[derive(Debug, Clone)]
pub(crate) enum AppPattern {
    Exact(String),
    Suffix(String),
}

impl AppPattern {
    pub(crate) fn parse(raw: &str) -> Result<AppPattern, PatternError> {
        let t = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'));
        if let Some(rest) = t.strip_prefix("*.") {
            if valid(rest) && !rest.contains('*') {
                return Ok(AppPattern::Suffix(format!(".{rest}")));
            }
        } else if valid(&t) {
            return Ok(AppPattern::Exact(t));
        }
        Err(PatternError::Host(raw.to_string()))
    }

    pub(crate) fn key(&self) -> String {
        match self {
            AppPattern::Exact(h) => h.clone(),
            AppPattern::Suffix(s) => format!("*{s}"),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            AppPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            AppPattern::Suffix(s) => host.len() > s.len() && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CloudApp {
    pub name: String,
    pub patterns: Vec<AppPattern>,
    pub tags: Vec<String>,
    /// `tags` as bits over the policy's tag list.
    pub tag_mask: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CloudApps {
    pub apps: Vec<CloudApp>,
    /// Exact host → app.
    exact: FastMap<usize>,
    /// `.domain` suffix → app.
    suffixes: FastMap<usize>,
}

impl CloudApps {
    pub(crate) fn new(apps: Vec<CloudApp>) -> CloudApps {
        let mut exact = FastMap::default();
        let mut suffixes = FastMap::default();
        for (i, app) in apps.iter().enumerate() {
            for p in &app.patterns {
                match p {
                    AppPattern::Exact(h) => exact.entry(h.clone()).or_insert(i),
                    AppPattern::Suffix(s) => suffixes.entry(s.clone()).or_insert(i),
                };
            }
        }
        CloudApps { apps, exact, suffixes }
    }

    /// The app whose most specific pattern matches `host`: an exact host, else the longest
    /// `*.domain` suffix.
    pub(crate) fn resolve(&self, host: &str) -> Option<usize> {
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let host = host.trim_end_matches('.');
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        // Suffixes from the longest proper one (".b.c" of "a.b.c") to the shortest.
        host.match_indices('.').find_map(|(i, _)| self.suffixes.get(&host[i..]).copied())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PartialUnscannable {
    encrypted: Option<Action>,
    oversize: Option<Action>,
    malformed: Option<Action>,
    ambiguous: Option<Action>,
    nested_limit: Option<Action>,
    unsupported: Option<Action>,
    incomplete: Option<Action>,
    text_unread: Option<Action>,
}

impl From<&UnscannableConfig> for PartialUnscannable {
    fn from(c: &UnscannableConfig) -> Self {
        PartialUnscannable {
            encrypted: c.encrypted,
            oversize: c.oversize,
            malformed: c.malformed,
            ambiguous: c.ambiguous,
            nested_limit: c.nested_limit,
            unsupported: c.unsupported,
            incomplete: c.incomplete,
            text_unread: c.text_unread,
        }
    }
}

impl PartialUnscannable {
    fn get(&self, reason: UnscannableReason) -> Option<Action> {
        match reason {
            UnscannableReason::Encrypted => self.encrypted,
            UnscannableReason::Oversize => self.oversize,
            UnscannableReason::Malformed => self.malformed,
            UnscannableReason::Ambiguous => self.ambiguous,
            UnscannableReason::NestedLimit => self.nested_limit,
            UnscannableReason::Unsupported => self.unsupported,
            UnscannableReason::Incomplete => self.incomplete,
            UnscannableReason::TextUnread => self.text_unread,
        }
    }
}

/// Global decisions for unscannable files, with the product defaults filled in: encrypted and
/// oversize files, unsupported containers and incomplete split uploads are allowed; malformed, ambiguous and nested-limit
/// ones blocked; files at rest whose text the detectors did not all read audited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unscannable(PartialUnscannable);

impl Unscannable {
    pub(crate) fn from_config(c: &UnscannableConfig) -> Unscannable {
        Unscannable(PartialUnscannable {
            encrypted: Some(c.encrypted.unwrap_or(Action::Allow)),
            oversize: Some(c.oversize.unwrap_or(Action::Allow)),
            malformed: Some(c.malformed.unwrap_or(Action::Block)),
            ambiguous: Some(c.ambiguous.unwrap_or(Action::Block)),
            nested_limit: Some(c.nested_limit.unwrap_or(Action::Block)),
            unsupported: Some(c.unsupported.unwrap_or(Action::Allow)),
            incomplete: Some(c.incomplete.unwrap_or(Action::Allow)),
            // Reported by default: a file whose text the detectors did not all see may hold
            // what they look for.
            text_unread: Some(c.text_unread.unwrap_or(Action::Audit)),
        })
    }
    fn get(&self, reason: UnscannableReason) -> Action {
        self.0.get(reason).unwrap_or(Action::Block)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: String,
    pub action: Action,
    pub message: Option<String>,
    pub unscannable: Option<PartialUnscannable>,
    pub labeled: Option<bool>,
    pub labels: Vec<LabelRef>,
    pub not_labels: Vec<LabelRef>,
    pub include_sublabels: bool,
    pub min_priority: Option<i64>,
    pub tenant: TenantScope,
    pub unknown_labels: Option<bool>,
    pub destinations: Vec<DestPattern>,
    pub not_destinations: Vec<DestPattern>,
    pub cloud_apps: Vec<usize>,
    pub not_cloud_apps: Vec<usize>,
    pub users: Vec<String>,
    pub not_users: Vec<String>,
    pub groups: Vec<String>,
    pub not_groups: Vec<String>,
    pub methods: Vec<String>,
    /// `kinds` as bits over the policy's known kind names (0: any kind).
    pub kind_mask: u64,
    /// `cloud_app_tags` / `not_cloud_app_tags` as bits over the policy's tag list.
    pub tag_mask: u64,
    pub not_tag_mask: u64,
    pub direction: Option<Direction>,
    /// Globs the path of a file at rest must match (any), and must not.
    pub paths: Vec<PathGlob>,
    pub not_paths: Vec<PathGlob>,
    /// Detectors that must all hold on the file (at rest).
    pub detectors: Vec<String>,
    /// The label to write into a matching file (at rest, `labelgate scan --apply`).
    pub apply_label: Option<LabelRef>,
}

/// A glob over a file's path: `*` and `?` stay within one path component, `**` crosses them,
/// `[...]` and `{a,b}` as in shells. Matched against the path as the scan reports it.
#[derive(Debug, Clone)]
pub(crate) struct PathGlob(globset::GlobMatcher);

impl PathGlob {
    pub(crate) fn new(pattern: &str) -> Result<PathGlob, String> {
        let glob = globset::GlobBuilder::new(pattern.trim()).literal_separator(true).build().map_err(|e| e.kind().to_string())?;
        Ok(PathGlob(glob.compile_matcher()))
    }

    fn matches(&self, path: &std::path::Path) -> bool {
        self.0.is_match(path)
    }
}

/// The bit-testable criteria of a rule, kept apart from the rest so that the rule loop rejects
/// most rules with a few AND operations on one cache line.
#[derive(Debug, Clone, Copy)]
struct Prefilter {
    direction: Option<Direction>,
    kind_mask: u64,
    /// Apps the destination must be (0: any).
    app_mask: u64,
    not_app_mask: u64,
    tag_mask: u64,
    not_tag_mask: u64,
    /// Bits over the policy's dictionaries of distinct users, groups, destinations and methods.
    user_mask: u64,
    not_user_mask: u64,
    group_mask: u64,
    not_group_mask: u64,
    dest_mask: u64,
    not_dest_mask: u64,
    method_mask: u64,
    /// Criteria the masks cannot express (a dictionary past 64 entries, apps past 64): the rule
    /// is checked by string comparison instead.
    needs_full: bool,
}

/// The distinct strings and patterns rules name, so that each is matched once per transaction
/// and rules test bits.
#[derive(Debug, Clone, Default)]
struct Dictionary {
    users: Vec<String>,
    groups: Vec<String>,
    dests: Vec<DestPattern>,
    dest_keys: Vec<String>,
    /// Destination bits by exact host, by `.domain` suffix, and URL prefixes with their bits.
    dest_exact: FastMap<u64>,
    dest_suffix: FastMap<u64>,
    dest_urls: Vec<(String, u64)>,
    methods: Vec<String>,
    overflow: bool,
}

impl Dictionary {
    fn build(rules: &[Rule]) -> Dictionary {
        let mut d = Dictionary::default();
        let add = |list: &mut Vec<String>, v: &str| {
            if !list.iter().any(|x| x == v) {
                list.push(v.to_string());
            }
        };
        for r in rules {
            for u in r.users.iter().chain(&r.not_users) {
                add(&mut d.users, u);
            }
            for g in r.groups.iter().chain(&r.not_groups) {
                add(&mut d.groups, g);
            }
            for m in &r.methods {
                add(&mut d.methods, m);
            }
            for p in r.destinations.iter().chain(&r.not_destinations) {
                let key = p.key();
                if !d.dest_keys.contains(&key) {
                    d.dest_keys.push(key);
                    d.dests.push(p.clone());
                }
            }
        }
        d.overflow = d.users.len() > 64 || d.groups.len() > 64 || d.dests.len() > 64 || d.methods.len() > 64;
        for (i, p) in d.dests.iter().enumerate().take(64) {
            let bit = 1u64 << i;
            match p {
                DestPattern::Host(AppPattern::Exact(h)) => *d.dest_exact.entry(h.clone()).or_default() |= bit,
                DestPattern::Host(AppPattern::Suffix(s)) => *d.dest_suffix.entry(s.clone()).or_default() |= bit,
                DestPattern::UrlPrefix(u) => d.dest_urls.push((u.clone(), bit)),
            }
        }
        d
    }

    /// Bits of every destination pattern that matches (host already lowercased).
    fn dest_bits_for(&self, host: &str, url: &str) -> u64 {
        let mut bits = self.dest_exact.get(host).copied().unwrap_or(0);
        if !self.dest_suffix.is_empty() {
            for (i, _) in host.match_indices('.') {
                bits |= self.dest_suffix.get(&host[i..]).copied().unwrap_or(0);
            }
        }
        for (prefix, bit) in &self.dest_urls {
            if url.len() >= prefix.len() && url.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()) {
                bits |= bit;
            }
        }
        bits
    }

    fn bits(list: &[String], items: &[String]) -> u64 {
        items.iter().filter_map(|i| list.iter().position(|x| x == i)).filter(|&p| p < 64).fold(0, |m, p| m | (1 << p))
    }

    fn dest_bits(&self, items: &[DestPattern]) -> u64 {
        items.iter().filter_map(|p| self.dest_keys.iter().position(|k| *k == p.key())).filter(|&p| p < 64).fold(0, |m, p| m | (1 << p))
    }
}

/// For each value a transaction can have in each dimension, the set of rules that value lets
/// through (bitsets over rule positions). Evaluating intersects a handful of these sets and
/// visits only the surviving rules, in order, instead of testing every rule.
#[derive(Debug, Clone, Default)]
struct RuleIndex {
    words: usize,
    /// By direction (upload, at rest).
    direction: [Vec<u64>; 2],
    /// By file kind bit position; the last entry is "a kind no rule names".
    kind: Vec<Vec<u64>>,
    /// By cloud app position (< 64), with the app's tags; the last entry is "no app".
    app: Vec<Vec<u64>>,
    /// Rules with no constraint in a dimension (`*_free`), rules a value admits (`*_yes`), rules a
    /// value excludes (`*_no`).
    user_free: Vec<u64>,
    user_yes: Vec<Vec<u64>>,
    user_no: Vec<Vec<u64>>,
    group_free: Vec<u64>,
    group_yes: Vec<Vec<u64>>,
    group_no: Vec<Vec<u64>>,
    dest_free: Vec<u64>,
    dest_yes: Vec<Vec<u64>>,
    dest_no: Vec<Vec<u64>>,
    method_free: Vec<u64>,
    method_yes: Vec<Vec<u64>>,
}

fn set_bit(v: &mut [u64], i: usize) {
    v[i / 64] |= 1 << (i % 64);
}

/// Positions of the set bits of `mask`, lowest first.
fn ones(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let b = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            b
        })
    })
}

impl RuleIndex {
    fn build(prefilters: &[Prefilter], apps: &CloudApps, dict: &Dictionary) -> RuleIndex {
        let n = prefilters.len();
        let words = n.div_ceil(64).max(1);
        let empty = || vec![0u64; words];
        let per = |count: usize| vec![vec![0u64; words]; count];
        let mut x = RuleIndex {
            words,
            direction: [empty(), empty()],
            kind: per(65),
            app: per(65),
            user_free: empty(),
            user_yes: per(dict.users.len().min(64)),
            user_no: per(dict.users.len().min(64)),
            group_free: empty(),
            group_yes: per(dict.groups.len().min(64)),
            group_no: per(dict.groups.len().min(64)),
            dest_free: empty(),
            dest_yes: per(dict.dests.len().min(64)),
            dest_no: per(dict.dests.len().min(64)),
            method_free: empty(),
            method_yes: per(dict.methods.len().min(64)),
        };
        let any = |mask: u64, have: u64| mask == 0 || mask & have != 0;
        for (i, pf) in prefilters.iter().enumerate() {
            for (d, dir) in [Direction::Upload, Direction::AtRest].into_iter().enumerate() {
                if pf.direction.is_none_or(|x| x == dir) {
                    set_bit(&mut x.direction[d], i);
                }
            }
            for k in 0..65 {
                if any(pf.kind_mask, if k < 64 { 1 << k } else { 0 }) {
                    set_bit(&mut x.kind[k], i);
                }
            }
            for a in 0..65 {
                let (app_bit, tags) = if a < 64 && a < apps.apps.len() { (1u64 << a, apps.apps[a].tag_mask) } else { (0, 0) };
                let ok = pf.needs_full
                    || (any(pf.app_mask, app_bit)
                        && pf.not_app_mask & app_bit == 0
                        && any(pf.tag_mask, tags)
                        && pf.not_tag_mask & tags == 0);
                if ok {
                    set_bit(&mut x.app[a], i);
                }
            }
            // Rules the masks cannot express are left unconstrained here and checked in full.
            let (users, not_users, groups, not_groups, dests, not_dests, methods) = if pf.needs_full {
                (0, 0, 0, 0, 0, 0, 0)
            } else {
                (pf.user_mask, pf.not_user_mask, pf.group_mask, pf.not_group_mask, pf.dest_mask, pf.not_dest_mask, pf.method_mask)
            };
            if users == 0 {
                set_bit(&mut x.user_free, i);
            }
            ones(users).for_each(|b| set_bit(&mut x.user_yes[b], i));
            ones(not_users).for_each(|b| set_bit(&mut x.user_no[b], i));
            if groups == 0 {
                set_bit(&mut x.group_free, i);
            }
            ones(groups).for_each(|b| set_bit(&mut x.group_yes[b], i));
            ones(not_groups).for_each(|b| set_bit(&mut x.group_no[b], i));
            if dests == 0 {
                set_bit(&mut x.dest_free, i);
            }
            ones(dests).for_each(|b| set_bit(&mut x.dest_yes[b], i));
            ones(not_dests).for_each(|b| set_bit(&mut x.dest_no[b], i));
            if methods == 0 {
                set_bit(&mut x.method_free, i);
            }
            ones(methods).for_each(|b| set_bit(&mut x.method_yes[b], i));
        }
        x
    }

    /// Writes into `out` the rules a transaction's facts let through, as a bitset.
    fn candidates(&self, direction: Direction, kind_pos: Option<usize>, app_pos: Option<usize>, tx: &TxBits, out: &mut [u64]) {
        let dir = &self.direction[usize::from(direction == Direction::AtRest)];
        let kind = &self.kind[kind_pos.filter(|&k| k < 64).unwrap_or(64)];
        let app = &self.app[app_pos.filter(|&a| a < 64).unwrap_or(64)];
        for w in 0..self.words.min(out.len()) {
            let mut users = self.user_free[w];
            let mut groups = self.group_free[w];
            let mut dests = self.dest_free[w];
            let mut methods = self.method_free[w];
            let mut excluded = 0u64;
            for b in ones(tx.user) {
                users |= self.user_yes[b][w];
                excluded |= self.user_no[b][w];
            }
            for b in ones(tx.groups) {
                groups |= self.group_yes[b][w];
                excluded |= self.group_no[b][w];
            }
            for b in ones(tx.dests) {
                dests |= self.dest_yes[b][w];
                excluded |= self.dest_no[b][w];
            }
            if tx.method != 0 {
                methods |= self.method_yes[tx.method.trailing_zeros() as usize][w];
            }
            out[w] = dir[w] & kind[w] & app[w] & users & groups & dests & methods & !excluded;
        }
    }
}

/// A transaction's facts as bits over the policy's dictionaries.
#[derive(Debug, Clone, Copy, Default)]
struct TxBits {
    user: u64,
    groups: u64,
    dests: u64,
    method: u64,
}

impl Prefilter {
    fn of(r: &Rule, dict: &Dictionary) -> Prefilter {
        let bits = |apps: &[usize]| apps.iter().filter(|&&a| a < 64).fold(0u64, |m, &a| m | (1 << a));
        let wide_apps = r.cloud_apps.iter().chain(&r.not_cloud_apps).any(|&a| a >= 64);
        let strings = !r.methods.is_empty()
            || !r.destinations.is_empty()
            || !r.not_destinations.is_empty()
            || !r.users.is_empty()
            || !r.not_users.is_empty()
            || !r.groups.is_empty()
            || !r.not_groups.is_empty();
        Prefilter {
            direction: r.direction,
            kind_mask: r.kind_mask,
            app_mask: if wide_apps { 0 } else { bits(&r.cloud_apps) },
            not_app_mask: if wide_apps { 0 } else { bits(&r.not_cloud_apps) },
            tag_mask: r.tag_mask,
            not_tag_mask: r.not_tag_mask,
            user_mask: Dictionary::bits(&dict.users, &r.users),
            not_user_mask: Dictionary::bits(&dict.users, &r.not_users),
            group_mask: Dictionary::bits(&dict.groups, &r.groups),
            not_group_mask: Dictionary::bits(&dict.groups, &r.not_groups),
            dest_mask: dict.dest_bits(&r.destinations),
            not_dest_mask: dict.dest_bits(&r.not_destinations),
            method_mask: Dictionary::bits(&dict.methods, &r.methods),
            needs_full: wide_apps || (strings && dict.overflow) || !r.paths.is_empty() || !r.not_paths.is_empty(),
        }
    }

    #[inline]
    fn pass(&self, direction: Direction, kind_bit: u64, app_bit: u64, tag_bits: u64) -> bool {
        let any = |mask: u64, have: u64| mask == 0 || mask & have != 0;
        self.direction.is_none_or(|d| d == direction)
            && any(self.kind_mask, kind_bit)
            && any(self.app_mask, app_bit)
            && self.not_app_mask & app_bit == 0
            && any(self.tag_mask, tag_bits)
            && self.not_tag_mask & tag_bits == 0
    }
}

/// A rule with its label references resolved to sets of label ids.
#[derive(Debug, Clone)]
struct ResolvedRule {
    rule: Rule,
    label_ids: Option<GuidSet>,
    not_label_ids: GuidSet,
    /// `apply_label`: the label's GUID, or the name no known label has.
    apply_label: Option<String>,
}

/// A policy bound to one catalog snapshot: what the hot path evaluates.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    rules: Vec<ResolvedRule>,
    prefilters: Vec<Prefilter>,
    dictionary: Dictionary,
    index: RuleIndex,
    default_action: Action,
    unscannable: Unscannable,
    apps: CloudApps,
    own_tenants: Vec<u128>,
    kind_names: Vec<String>,
    catalog: Arc<Catalog>,
}

pub(crate) fn resolve(policy: &Policy, catalog: Arc<Catalog>) -> (ResolvedPolicy, Vec<Problem>) {
    resolve_shared(policy, catalog)
}

fn resolve_shared(policy: &Policy, catalog: Arc<Catalog>) -> (ResolvedPolicy, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut resolve_refs = |refs: &[LabelRef], sublabels: bool, rule: &str| -> GuidSet {
        let mut ids: HashSet<String> = HashSet::new();
        for r in refs {
            match r {
                LabelRef::Id(id) => {
                    ids.insert(id.clone());
                }
                LabelRef::Name(name, span) => {
                    let found = catalog.by_name(None, name);
                    let distinct: HashSet<&str> = found.iter().map(|l| l.id.as_str()).collect();
                    match distinct.len() {
                        0 => problems.push(Problem::warning(
                            span.clone(),
                            format!("rule {rule:?}: no known label is named {name:?} (not in [[labels]] nor the last retrieved snapshot)"),
                        )),
                        1 => {
                            ids.extend(distinct.into_iter().map(str::to_string));
                        }
                        n => problems.push(Problem::error(
                            span.clone(),
                            format!("rule {rule:?}: label name {name:?} matches {n} labels; use the label GUID"),
                        )),
                    }
                }
            }
        }
        if sublabels {
            let roots: Vec<String> = ids.iter().cloned().collect();
            for l in catalog.labels() {
                if roots.iter().any(|r| catalog.is_within(l, r)) {
                    ids.insert(l.id.clone());
                }
            }
        }
        ids.iter().filter_map(|id| parse_guid(id)).collect()
    };
    let rules: Vec<ResolvedRule> = policy
        .rules
        .iter()
        .map(|r| ResolvedRule {
            apply_label: r.apply_label.as_ref().map(|l| match l {
                LabelRef::Id(id) => id.clone(),
                LabelRef::Name(name, _) => {
                    let found = resolve_refs(std::slice::from_ref(l), false, &r.name);
                    match found.iter().next() {
                        Some(&id) if found.len() == 1 => catalog.lookup_guid(None, id).map_or_else(|| name.clone(), |l| l.id.clone()),
                        _ => name.clone(),
                    }
                }
            }),
            label_ids: if r.labels.is_empty() { None } else { Some(resolve_refs(&r.labels, r.include_sublabels, &r.name)) },
            not_label_ids: resolve_refs(&r.not_labels, r.include_sublabels, &r.name),
            rule: r.clone(),
        })
        .collect();
    let dictionary = Dictionary::build(&policy.rules);
    let prefilters: Vec<Prefilter> = rules.iter().map(|r: &ResolvedRule| Prefilter::of(&r.rule, &dictionary)).collect();
    let index = RuleIndex::build(&prefilters, &policy.apps, &dictionary);
    let resolved = ResolvedPolicy {
        rules,
        prefilters,
        dictionary,
        index,
        default_action: policy.default_action,
        unscannable: policy.unscannable,
        apps: policy.apps.clone(),
        own_tenants: policy.own_tenants.iter().filter_map(|t| parse_guid(t)).collect(),
        kind_names: policy.kind_names.clone(),
        catalog,
    };
    (resolved, problems)
}

/// A label found on a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileLabel {
    /// Label GUID (lowercase).
    pub id: String,
    /// Tenant GUID when the file states it.
    pub tenant: Option<String>,
}

/// What the extractor found in one file.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct FileFacts {
    /// The file name, when known (multipart filename, path).
    pub name: Option<String>,
    /// The extractor's kind name (`docx`, `pdf`, …).
    pub kind: String,
    /// Effective labels.
    pub labels: Vec<FileLabel>,
    /// Why it could not be fully inspected, if so.
    pub unscannable: Option<UnscannableReason>,
    /// Content detectors that hold on the file's text (at rest; filled by the scan from the
    /// counts and the detectors' `min_count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detected: Vec<String>,
}

/// One transaction: where files are going, who sends them, and what they carry.
#[derive(Debug, Clone)]
pub struct Transaction<'a> {
    /// Upload (proxy) or at rest (scan).
    pub direction: Direction,
    /// HTTP method (`POST`, …); empty at rest.
    pub method: &'a str,
    /// Destination host, as the request is really sent.
    pub host: &'a str,
    /// Destination URL without query (`https://host/path`).
    pub url: &'a str,
    /// Authenticated user, if any.
    pub user: Option<&'a str>,
    /// The user's groups.
    pub groups: &'a [String],
    /// The files.
    pub files: &'a [FileFacts],
    /// Where the file lies, at rest (`paths` / `not_paths`); `None` for an upload.
    pub path: Option<&'a std::path::Path>,
}

impl<'a> Transaction<'a> {
    /// A file at rest at `path` (what `labelgate scan` evaluates): no method, host, URL or user.
    pub fn at_rest(files: &'a [FileFacts], path: &'a std::path::Path) -> Transaction<'a> {
        Transaction { direction: Direction::AtRest, method: "", host: "", url: "", user: None, groups: &[], files, path: Some(path) }
    }
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// The rule that decided, when one did.
    pub rule: Option<String>,
    /// The rule's user-facing message.
    pub message: Option<String>,
    /// Label ids that made the rule match.
    pub matched_labels: Vec<String>,
    /// The index of the file that decided (the strictest), when there are files.
    pub file: Option<usize>,
    /// A sentence for admins and audit records.
    pub reason: String,
    /// The cloud application of the destination.
    pub cloud_app: Option<String>,
    /// The label the deciding rule writes into the file at rest (`apply_label`): its GUID when
    /// the catalog resolved the reference, else the reference as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_label: Option<String>,
}

impl ResolvedPolicy {
    /// The catalog snapshot this policy is bound to.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Evaluates a transaction: per file, the first matching rule (or the default), combined
    /// with the unscannable decision; the strictest file decides.
    pub fn evaluate(&self, tx: &Transaction<'_>) -> Verdict {
        self.evaluate_with(tx, true)
    }

    /// The same evaluation without the rule index: every rule is tested in order with plain
    /// comparisons. Slow; it exists so tests can check the index against it.
    #[doc(hidden)]
    pub fn evaluate_reference(&self, tx: &Transaction<'_>) -> Verdict {
        self.evaluate_with(tx, false)
    }

    fn evaluate_with(&self, tx: &Transaction<'_>, use_index: bool) -> Verdict {
        let app = self.apps.resolve(tx.host);
        let app_name = app.map(|i| self.apps.apps[i].name.clone());
        let tag_mask = app.map_or(0, |a| self.apps.apps[a].tag_mask);
        let user: Option<std::borrow::Cow<'_, str>> =
            tx.user.map(|u| if u.chars().any(char::is_uppercase) { u.to_lowercase().into() } else { u.into() });
        let lowered: Vec<String>;
        let groups: &[String] = if tx.groups.iter().any(|g| g.chars().any(char::is_uppercase)) {
            lowered = tx.groups.iter().map(|g| g.to_lowercase()).collect();
            &lowered
        } else {
            tx.groups
        };
        let d = &self.dictionary;
        let bits = TxBits {
            user: user.as_deref().and_then(|u| d.users.iter().take(64).position(|x| x == u)).map_or(0, |i| 1 << i),
            groups: Dictionary::bits(&d.groups, groups),
            dests: {
                let host = tx.host.trim_end_matches('.');
                if host.bytes().any(|b| b.is_ascii_uppercase()) {
                    d.dest_bits_for(&host.to_ascii_lowercase(), tx.url)
                } else {
                    d.dest_bits_for(host, tx.url)
                }
            },
            method: d.methods.iter().take(64).position(|m| m.eq_ignore_ascii_case(tx.method)).map_or(0, |i| 1 << i),
        };
        let ctx = Ctx { tx, app, tag_mask, bits, user: user.as_deref(), groups };
        let mut best: Option<Verdict> = None;
        let no_file = [FileFacts::default()];
        let files: &[FileFacts] = if tx.files.is_empty() { &no_file } else { tx.files };
        for (i, file) in files.iter().enumerate() {
            let mut v = self.evaluate_file(&ctx, file, use_index);
            v.file = (!tx.files.is_empty()).then_some(i);
            v.cloud_app = app_name.clone();
            if best.as_ref().is_none_or(|b| v.action > b.action) {
                best = Some(v);
            }
        }
        best.unwrap_or_else(|| Verdict {
            action: self.default_action,
            rule: None,
            message: None,
            matched_labels: Vec::new(),
            file: None,
            reason: "no files".into(),
            cloud_app: app_name,
            apply_label: None,
        })
    }

    fn evaluate_file(&self, ctx: &Ctx<'_>, file: &FileFacts, use_index: bool) -> Verdict {
        let kind_bit = self.kind_names.iter().position(|k| k.eq_ignore_ascii_case(&file.kind)).map_or(0, |i| 1u64 << i);
        // Each label is parsed and looked up once, not once per rule.
        let facts: Vec<LabelFact> = file
            .labels
            .iter()
            .map(|l| {
                let id = parse_guid(&l.id).unwrap_or(0);
                let tenant = l.tenant.as_deref().and_then(parse_guid);
                let known = self.catalog.lookup_guid(tenant, id);
                LabelFact { id, tenant, known: known.is_some(), priority: known.map(|k| k.priority) }
            })
            .collect();
        let mut verdict = Verdict {
            action: self.default_action,
            rule: None,
            message: None,
            matched_labels: Vec::new(),
            file: None,
            reason: String::new(),
            cloud_app: None,
            apply_label: None,
        };
        let kind_pos = (kind_bit != 0).then(|| kind_bit.trailing_zeros() as usize);
        // Up to 256 rules fit on the stack.
        let mut small = [0u64; 4];
        let mut large = Vec::new();
        let candidates: &mut [u64] = if self.index.words <= small.len() {
            &mut small[..self.index.words]
        } else {
            large.resize(self.index.words, 0);
            &mut large
        };
        if use_index {
            self.index.candidates(ctx.tx.direction, kind_pos, ctx.app, &ctx.bits, candidates);
        } else {
            candidates.fill(u64::MAX);
        }
        let positions = candidates.iter().enumerate().flat_map(|(w, &word)| ones(word).map(move |b| w * 64 + b));
        for i in positions {
            let (Some(r), Some(pf)) = (self.rules.get(i), self.prefilters.get(i)) else { break };
            if (pf.needs_full || !use_index) && !self.context_matches(&r.rule, ctx, kind_bit) {
                continue;
            }
            if let Some(matched) = self.labels_match(r, file, &facts) {
                verdict.action = r.rule.action;
                verdict.rule = Some(r.rule.name.clone());
                verdict.message = r.rule.message.clone();
                let mut reason = String::with_capacity(96);
                reason.push_str("rule \"");
                reason.push_str(&r.rule.name);
                reason.push_str("\" matched");
                if !matched.is_empty() {
                    reason.push_str(" label ");
                    reason.push_str(&self.describe(&matched, file, &facts));
                }
                verdict.reason = reason;
                verdict.matched_labels = matched;
                verdict.apply_label = r.apply_label.clone();
                break;
            }
        }
        if verdict.rule.is_none() {
            verdict.reason = format!("no rule matched; default action {}", self.default_action.as_str());
        }
        if let Some(reason) = file.unscannable {
            // A rule that fits the context may override the global decision for this reason.
            let (action, by) = self
                .rules
                .iter()
                .filter(|r| self.context_matches(&r.rule, ctx, kind_bit))
                .find_map(|r| r.rule.unscannable.and_then(|u| u.get(reason)).map(|a| (a, Some(r.rule.name.clone()))))
                .unwrap_or((self.unscannable.get(reason), None));
            if action > verdict.action {
                verdict.action = action;
                verdict.rule = by.clone();
                verdict.message = None;
                verdict.matched_labels = Vec::new();
                verdict.reason = match by {
                    Some(rule) => format!("file is {} and rule {rule:?} decides {}", reason.as_str(), action.as_str()),
                    None => format!("file is {} and on_unscannable.{} is {}", reason.as_str(), reason.as_str(), action.as_str()),
                };
            }
        }
        verdict
    }

    fn describe(&self, ids: &[String], file: &FileFacts, facts: &[LabelFact]) -> String {
        // Built by hand: the format machinery costs more than the whole rule loop.
        let mut out = String::with_capacity(64 * ids.len());
        for (n, id) in ids.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            let fact = file.labels.iter().zip(facts).find(|(l, _)| &l.id == id).map(|(_, f)| f);
            match fact.and_then(|f| self.catalog.lookup_guid(f.tenant, f.id)) {
                Some(l) => {
                    out.push('"');
                    if l.parent.is_some() {
                        let mut path: Vec<&str> = self.catalog.ancestors(l).map(|a| a.display_name.as_str()).collect();
                        path.reverse();
                        for p in path {
                            out.push_str(p);
                            out.push_str(" \\ ");
                        }
                    }
                    out.push_str(&l.display_name);
                    out.push_str("\" (");
                    out.push_str(id);
                    out.push(')');
                }
                None => out.push_str(id),
            }
        }
        out
    }

    /// Every non-label criterion: direction, method, destination, app, tags, user, groups, kind.
    fn context_matches(&self, r: &Rule, ctx: &Ctx<'_>, kind_bit: u64) -> bool {
        let pf = Prefilter::of(r, &self.dictionary);
        let app_bit = ctx.app.map_or(0, |a| if a < 64 { 1u64 << a } else { 0 });
        pf.pass(ctx.tx.direction, kind_bit, app_bit, ctx.tag_mask) && self.string_criteria_match(r, ctx)
    }

    /// The criteria the prefilter cannot decide: methods, destinations, users, groups, and apps
    /// beyond the 64 that fit the masks.
    fn string_criteria_match(&self, r: &Rule, ctx: &Ctx<'_>) -> bool {
        let tx = ctx.tx;
        if (!r.cloud_apps.is_empty() || !r.not_cloud_apps.is_empty()) && r.cloud_apps.iter().chain(&r.not_cloud_apps).any(|&a| a >= 64) {
            if !r.cloud_apps.is_empty() && !ctx.app.is_some_and(|a| r.cloud_apps.contains(&a)) {
                return false;
            }
            if ctx.app.is_some_and(|a| r.not_cloud_apps.contains(&a)) {
                return false;
            }
        }
        if !r.methods.is_empty() && !r.methods.iter().any(|m| m.eq_ignore_ascii_case(tx.method)) {
            return false;
        }
        if !r.destinations.is_empty() && !r.destinations.iter().any(|d| d.matches(tx.host, tx.url)) {
            return false;
        }
        if r.not_destinations.iter().any(|d| d.matches(tx.host, tx.url)) {
            return false;
        }
        // Rule users and groups are stored lowercased, the transaction's were lowercased once.
        if !r.users.is_empty() && !ctx.user.is_some_and(|u| r.users.iter().any(|x| x == u)) {
            return false;
        }
        if ctx.user.is_some_and(|u| r.not_users.iter().any(|x| x == u)) {
            return false;
        }
        if !r.groups.is_empty() && !r.groups.iter().any(|g| ctx.groups.contains(g)) {
            return false;
        }
        if r.not_groups.iter().any(|g| ctx.groups.contains(g)) {
            return false;
        }
        if !r.paths.is_empty() && !tx.path.is_some_and(|p| r.paths.iter().any(|g| g.matches(p))) {
            return false;
        }
        if tx.path.is_some_and(|p| r.not_paths.iter().any(|g| g.matches(p))) {
            return false;
        }
        true
    }

    /// `Some(matched label ids)` when the label criteria hold (empty when the rule has none).
    fn labels_match(&self, r: &ResolvedRule, file: &FileFacts, facts: &[LabelFact]) -> Option<Vec<String>> {
        let rule = &r.rule;
        if !rule.detectors.iter().all(|d| file.detected.iter().any(|x| x == d)) {
            return None;
        }
        match rule.labeled {
            Some(true) if file.labels.is_empty() => return None,
            Some(false) if !file.labels.is_empty() => return None,
            _ => {}
        }
        if !r.not_label_ids.is_empty() && facts.iter().any(|l| r.not_label_ids.contains(&l.id)) {
            return None;
        }
        let per_label =
            r.label_ids.is_some() || rule.min_priority.is_some() || rule.tenant != TenantScope::Any || rule.unknown_labels.is_some();
        if !per_label {
            return Some(if rule.labeled == Some(true) { file.labels.iter().map(|l| l.id.clone()).collect() } else { Vec::new() });
        }
        let mut matched = Vec::new();
        for (l, fact) in file.labels.iter().zip(facts) {
            if r.label_ids.as_ref().is_some_and(|ids| !ids.contains(&fact.id)) {
                continue;
            }
            if rule.min_priority.is_some_and(|min| fact.priority.is_none_or(|p| p < min)) {
                continue;
            }
            let own = fact.tenant.map(|t| self.own_tenants.contains(&t));
            match rule.tenant {
                TenantScope::Any => {}
                TenantScope::Own if own != Some(true) => continue,
                TenantScope::Foreign if own != Some(false) => continue,
                _ => {}
            }
            if rule.unknown_labels.is_some_and(|unknown| unknown == fact.known) {
                continue;
            }
            matched.push(l.id.clone());
        }
        (!matched.is_empty()).then_some(matched)
    }
}

/// A file label, parsed and looked up once per evaluation.
struct LabelFact {
    id: u128,
    tenant: Option<u128>,
    known: bool,
    priority: Option<i64>,
}

struct Ctx<'a> {
    tx: &'a Transaction<'a>,
    app: Option<usize>,
    tag_mask: u64,
    bits: TxBits,
    /// Lowercased.
    user: Option<&'a str>,
    /// Lowercased.
    groups: &'a [String],
}
