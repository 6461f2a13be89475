//! The answer a user sees when an upload is blocked: an HTML page for browsers, JSON for API and
//! fetch/XHR clients. Every value is escaped: file names and label names come from the upload.

use labelgate_policy::Verdict;

/// One blocked file for the page.
pub(crate) struct BlockedFile {
    pub name: Option<String>,
    pub labels: Vec<String>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Does the client want JSON (API, fetch/XHR) rather than a page?
pub(crate) fn wants_json(headers: &http::HeaderMap) -> bool {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let accept = h("accept");
    h("x-requested-with") == "xmlhttprequest"
        || matches!(h("sec-fetch-mode").as_str(), "cors" | "same-origin" | "no-cors")
        || (accept.contains("application/json") && !accept.contains("text/html"))
}

pub(crate) fn html(verdict: &Verdict, url: &str, files: &[BlockedFile]) -> String {
    let message = verdict.message.as_deref().unwrap_or("This upload carries information that may not be sent to this destination.");
    let mut items = String::new();
    for f in files {
        items.push_str("<li><strong>");
        items.push_str(&escape(f.name.as_deref().unwrap_or("(unnamed upload)")));
        items.push_str("</strong>");
        if !f.labels.is_empty() {
            items.push_str(" &mdash; ");
            items.push_str(&escape(&f.labels.join(", ")));
        }
        items.push_str("</li>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Upload blocked</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{color:#b00020}}code{{background:#f3f3f3;padding:.1rem .3rem}}</style></head><body>\
<h1>Upload blocked</h1><p>{}</p><ul>{}</ul><p>Destination: <code>{}</code></p>\
<p>Rule: <code>{}</code></p><p>If you need to send this file, contact your security team.</p></body></html>",
        escape(message),
        items,
        escape(url),
        escape(verdict.rule.as_deref().unwrap_or("-"))
    )
}

pub(crate) fn json(verdict: &Verdict, url: &str, files: &[BlockedFile]) -> String {
    serde_json::json!({
        "error": "blocked",
        "message": verdict.message,
        "rule": verdict.rule,
        "reason": verdict.reason,
        "url": url,
        "files": files.iter().map(|f| serde_json::json!({"name": f.name, "labels": f.labels})).collect::<Vec<_>>(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_everything_from_the_upload() {
        let v = Verdict {
            action: labelgate_policy::Action::Block,
            rule: Some("<r>".into()),
            message: Some("a & b".into()),
            matched_labels: vec![],
            file: Some(0),
            reason: String::new(),
            cloud_app: None,
            apply_label: None,
        };
        let page = html(
            &v,
            "http://x/<y>",
            &[BlockedFile { name: Some("<script>alert(1)</script>.docx".into()), labels: vec!["\"Secret\"".into()] }],
        );
        assert!(!page.contains("<script>"));
        assert!(
            page.contains("&lt;script&gt;")
                && page.contains("a &amp; b")
                && page.contains("&quot;Secret&quot;")
                && page.contains("&lt;r&gt;")
        );
    }
}
