//! The `[policy]` and `[[cloud_apps]]` sections as written, and their compilation into a
//! [`Policy`] with every problem located.

use crate::eval::{self, AppPattern, CloudApp, CloudApps, DestPattern, LabelRef, PathGlob, Rule, Unscannable};
use crate::{Action, Direction, Policy, Problem};
use serde::Deserialize;
use toml::Spanned;

/// Per-reason decisions for files that cannot be inspected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnscannableConfig {
    /// Encrypted files (no label readable).
    pub encrypted: Option<Action>,
    /// Files larger than inspection allows.
    pub oversize: Option<Action>,
    /// Files that are not readable as their container.
    pub malformed: Option<Action>,
    /// Files whose structure could hide a label.
    pub ambiguous: Option<Action>,
    /// Files inside files that could not all be opened because an `[inspection]` nesting
    /// limit was reached (depth, inner size, expansion, members, ratio).
    pub nested_limit: Option<Action>,
    /// Containers the engine recognises but cannot open (RAR, unusual compression).
    pub unsupported: Option<Action>,
    /// Files sent in pieces that could not be reassembled (a gap, a start never seen, a piece
    /// that could not be kept).
    pub incomplete: Option<Action>,
    /// At rest with content detectors: files whose text was not all read.
    pub text_unread: Option<Action>,
}

/// Which tenants a rule's labels must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantScope {
    /// Tenants of configured MIP accounts.
    Own,
    /// Any other tenant.
    Foreign,
    /// No constraint.
    Any,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// What happens when no rule matches (default `allow`).
    #[serde(default)]
    pub default_action: Option<Action>,
    /// Decisions for files that cannot be inspected.
    #[serde(default)]
    pub on_unscannable: UnscannableConfig,
    /// Ordered rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Tenants that count as the organisation's own, besides those of configured MIP accounts.
    #[serde(default)]
    pub own_tenants: Vec<String>,
}

/// One `[[policy.rules]]` entry. Every criterion is optional; those given must all hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RuleConfig {
    pub name: Spanned<String>,
    pub action: Action,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub on_unscannable: Option<UnscannableConfig>,
    #[serde(default)]
    pub labeled: Option<bool>,
    #[serde(default)]
    pub labels: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_labels: Vec<Spanned<String>>,
    #[serde(default)]
    pub include_sublabels: bool,
    #[serde(default)]
    pub min_priority: Option<i64>,
    #[serde(default)]
    pub tenant: Option<TenantScope>,
    #[serde(default)]
    pub unknown_labels: Option<bool>,
    #[serde(default)]
    pub destinations: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_destinations: Vec<Spanned<String>>,
    #[serde(default)]
    pub cloud_apps: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_cloud_apps: Vec<Spanned<String>>,
    #[serde(default)]
    pub cloud_app_tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_cloud_app_tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub not_users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub not_groups: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<Spanned<String>>,
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Globs over the path of a file at rest (`direction = "at_rest"` only).
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_paths: Vec<Spanned<String>>,
    /// Content detectors that must all hold on the file (`direction = "at_rest"` only: the
    /// proxy does not read text).
    #[serde(default)]
    pub detectors: Vec<Spanned<String>>,
    /// The label `labelgate scan --apply` writes into a file this rule matches (name or GUID;
    /// `direction = "at_rest"` only).
    #[serde(default)]
    pub apply_label: Option<Spanned<String>>,
}

/// Cloud app names and tags compare as the compiler compares them: trimmed, ASCII letters in any
/// case (other characters exactly).
pub fn same_app_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl RuleConfig {
    /// Whether the rule names the cloud app `name` (`cloud_apps` / `not_cloud_apps`).
    pub fn names_app(&self, name: &str) -> bool {
        self.cloud_apps.iter().chain(&self.not_cloud_apps).any(|a| same_app_name(a.get_ref(), name))
    }

    /// The detector names the rule requires, with where each is written.
    pub fn detector_names(&self) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
        self.detectors.iter().map(|d| (d.get_ref().trim(), d.span()))
    }

    /// Whether the rule names the tag `tag` (`cloud_app_tags` / `not_cloud_app_tags`).
    pub fn names_tag(&self, tag: &str) -> bool {
        self.cloud_app_tags.iter().chain(&self.not_cloud_app_tags).any(|t| same_app_name(t.get_ref(), tag))
    }
}

/// One `[[cloud_apps]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudAppConfig {
    /// Unique name.
    pub name: Spanned<String>,
    /// Host patterns: `drive.example.com` or `*.example.com`.
    pub hosts: Vec<Spanned<String>>,
    /// Tags (`Sanctioned`, `Unsanctioned`, or any).
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
}

fn span<T>(s: &Spanned<T>) -> std::ops::Range<usize> {
    s.span()
}

pub(crate) fn compile(
    config: &PolicyConfig,
    apps: &[CloudAppConfig],
    known_kinds: &[&str],
    own_tenants: &[String],
) -> (Policy, Vec<Problem>) {
    let mut problems = Vec::new();

    // Cloud applications: unique names, valid patterns, no pattern claimed twice.
    let mut compiled_apps: Vec<CloudApp> = Vec::new();
    let mut claimed: Vec<(String, String)> = Vec::new();
    for app in apps {
        let name = app.name.get_ref().trim().to_string();
        if name.is_empty() {
            problems.push(Problem::error(span(&app.name), "cloud app name is empty"));
        }
        if compiled_apps.iter().any(|a| a.name.eq_ignore_ascii_case(&name)) {
            problems.push(Problem::error(span(&app.name), format!("duplicate cloud app name {name:?}")));
        }
        let mut patterns = Vec::new();
        for host in &app.hosts {
            match AppPattern::parse(host.get_ref()) {
                Ok(p) => {
                    let key = p.key();
                    if let Some((_, other)) = claimed.iter().find(|(k, _)| *k == key) {
                        problems.push(Problem::error(
                            span(host),
                            format!("host pattern {:?} is claimed by cloud apps {other:?} and {name:?}", host.get_ref()),
                        ));
                    } else {
                        claimed.push((key, name.clone()));
                    }
                    patterns.push(p);
                }
                Err(why) => problems.push(Problem::error(span(host), why.to_string())),
            }
        }
        if app.hosts.is_empty() {
            problems.push(Problem::error(span(&app.name), format!("cloud app {name:?} has no hosts")));
        }
        compiled_apps.push(CloudApp {
            name,
            patterns,
            tags: app.tags.iter().map(|t| t.get_ref().trim().to_ascii_lowercase()).collect(),
            tag_mask: 0,
        });
    }
    let mut all_tags: Vec<String> = Vec::new();
    for t in compiled_apps.iter().flat_map(|a| a.tags.iter()) {
        if !all_tags.contains(t) {
            all_tags.push(t.clone());
        }
    }
    if all_tags.len() > 64 {
        problems.push(Problem::error(0..0, format!("{} distinct cloud app tags; at most 64 are supported", all_tags.len())));
        all_tags.truncate(64);
    }
    let tag_bits = |tags: &[String]| tags.iter().filter_map(|t| all_tags.iter().position(|x| x == t)).fold(0u64, |m, i| m | (1 << i));
    for app in &mut compiled_apps {
        app.tag_mask = tag_bits(&app.tags);
    }

    let mut rules = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for rc in &config.rules {
        let name = rc.name.get_ref().trim().to_string();
        if name.is_empty() {
            problems.push(Problem::error(span(&rc.name), "rule name is empty"));
        }
        if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            problems.push(Problem::error(span(&rc.name), format!("duplicate rule name {name:?}")));
        }
        names.push(name.clone());

        let app_refs = |list: &[Spanned<String>], problems: &mut Vec<Problem>| -> Vec<usize> {
            list.iter()
                .filter_map(|a| {
                    let found = compiled_apps.iter().position(|c| c.name.eq_ignore_ascii_case(a.get_ref().trim()));
                    if found.is_none() {
                        problems.push(Problem::error(
                            span(a),
                            format!("rule {name:?} names cloud app {:?}, which no [[cloud_apps]] entry defines", a.get_ref()),
                        ));
                    }
                    found
                })
                .collect()
        };
        let cloud_apps = app_refs(&rc.cloud_apps, &mut problems);
        let not_cloud_apps = app_refs(&rc.not_cloud_apps, &mut problems);
        let tag_refs = |list: &[Spanned<String>], problems: &mut Vec<Problem>| -> Vec<String> {
            list.iter()
                .map(|t| {
                    let tag = t.get_ref().trim().to_ascii_lowercase();
                    if !all_tags.contains(&tag) {
                        problems.push(Problem::error(
                            span(t),
                            format!("rule {name:?} names tag {:?}, which no cloud app carries", t.get_ref()),
                        ));
                    }
                    tag
                })
                .collect()
        };
        let tags = tag_refs(&rc.cloud_app_tags, &mut problems);
        let not_tags = tag_refs(&rc.not_cloud_app_tags, &mut problems);
        let dests = |list: &[Spanned<String>], problems: &mut Vec<Problem>| -> Vec<DestPattern> {
            list.iter()
                .filter_map(|d| match DestPattern::parse(d.get_ref()) {
                    Ok(p) => Some(p),
                    Err(why) => {
                        problems.push(Problem::error(span(d), why.to_string()));
                        None
                    }
                })
                .collect()
        };
        let destinations = dests(&rc.destinations, &mut problems);
        let not_destinations = dests(&rc.not_destinations, &mut problems);
        let labels = rc.labels.iter().map(|l| LabelRef::parse(l.get_ref(), span(l))).collect();
        let not_labels = rc.not_labels.iter().map(|l| LabelRef::parse(l.get_ref(), span(l))).collect();
        let kinds: Vec<String> = rc
            .kinds
            .iter()
            .map(|k| {
                let kind = k.get_ref().trim().to_ascii_lowercase();
                if !known_kinds.contains(&kind.as_str()) {
                    problems
                        .push(Problem::error(span(k), format!("unknown file kind {:?} (known: {})", k.get_ref(), known_kinds.join(", "))));
                }
                kind
            })
            .collect();
        let kind_mask =
            kinds.iter().filter_map(|k| known_kinds.iter().position(|x| x == k)).filter(|&i| i < 64).fold(0u64, |m, i| m | (1 << i));
        let (tag_mask, not_tag_mask) = (tag_bits(&tags), tag_bits(&not_tags));
        // Paths exist only for files at rest: on an upload the criterion would never hold, and a
        // block rule that silently never matches fails open.
        if (!rc.paths.is_empty() || !rc.not_paths.is_empty()) && rc.direction != Some(Direction::AtRest) {
            let at = rc.paths.first().or(rc.not_paths.first()).map_or_else(|| span(&rc.name), span);
            problems.push(Problem::error(
                at,
                format!("rule {name:?} has paths / not_paths, which apply to files at rest only: add direction = \"at_rest\""),
            ));
        }
        // Detectors and labelling run only in `labelgate scan`: on an upload the criterion would
        // never hold (a block rule failing open) and no label would be written.
        if !rc.detectors.is_empty() && rc.direction != Some(Direction::AtRest) {
            problems.push(Problem::error(
                span(&rc.detectors[0]),
                format!("rule {name:?} has detectors, which run on files at rest only (labelgate scan): add direction = \"at_rest\""),
            ));
        }
        if let Some(apply) = rc.apply_label.as_ref().filter(|_| rc.direction != Some(Direction::AtRest)) {
            problems.push(Problem::error(
                span(apply),
                format!("rule {name:?} has apply_label, which labelgate scan --apply writes into files at rest only: add direction = \"at_rest\""),
            ));
        }
        for d in &rc.detectors {
            if d.get_ref().trim().is_empty() {
                problems.push(Problem::error(span(d), format!("rule {name:?}: empty detector name")));
            }
        }
        if rc.apply_label.as_ref().is_some_and(|l| l.get_ref().trim().is_empty()) {
            problems.push(Problem::error(span(rc.apply_label.as_ref().expect("checked")), format!("rule {name:?}: apply_label is empty")));
        }
        let globs = |list: &[Spanned<String>], problems: &mut Vec<Problem>| -> Vec<PathGlob> {
            list.iter()
                .filter_map(|g| match PathGlob::new(g.get_ref()) {
                    Ok(glob) => Some(glob),
                    Err(why) => {
                        problems.push(Problem::error(span(g), format!("path glob {:?}: {why}", g.get_ref())));
                        None
                    }
                })
                .collect()
        };
        let paths = globs(&rc.paths, &mut problems);
        let not_paths = globs(&rc.not_paths, &mut problems);
        rules.push(Rule {
            name,
            action: rc.action,
            message: rc.message.clone(),
            unscannable: rc.on_unscannable.as_ref().map(eval::PartialUnscannable::from),
            labeled: rc.labeled,
            labels,
            not_labels,
            include_sublabels: rc.include_sublabels,
            min_priority: rc.min_priority,
            tenant: rc.tenant.unwrap_or(TenantScope::Any),
            unknown_labels: rc.unknown_labels,
            destinations,
            not_destinations,
            cloud_apps,
            not_cloud_apps,
            users: rc.users.iter().map(|u| u.trim().to_lowercase()).collect(),
            not_users: rc.not_users.iter().map(|u| u.trim().to_lowercase()).collect(),
            groups: rc.groups.iter().map(|g| g.trim().to_lowercase()).collect(),
            not_groups: rc.not_groups.iter().map(|g| g.trim().to_lowercase()).collect(),
            methods: rc.methods.iter().map(|m| m.trim().to_ascii_uppercase()).collect(),
            kind_mask,
            tag_mask,
            not_tag_mask,
            direction: rc.direction,
            paths,
            not_paths,
            detectors: rc.detectors.iter().map(|d| d.get_ref().trim().to_string()).collect(),
            apply_label: rc.apply_label.as_ref().map(|l| LabelRef::parse(l.get_ref(), span(l))),
        });
    }

    let policy = Policy {
        rules,
        default_action: config.default_action.unwrap_or(Action::Allow),
        unscannable: Unscannable::from_config(&config.on_unscannable),
        apps: CloudApps::new(compiled_apps),
        own_tenants: own_tenants.iter().chain(config.own_tenants.iter()).map(|t| labelgate_catalog::normalize_id(t)).collect(),
        kind_names: known_kinds.iter().take(64).map(|k| k.to_string()).collect(),
    };
    (policy, problems)
}
