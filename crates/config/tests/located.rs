//! Every section's problems point at the right line of the shipped config: one mutation per
//! section, each checked to be reported on the line of the key it breaks (never on a comment
//! that names the section, as `text.find("[proxy]")` once did).

const SHIPPED: &str = include_str!("../../../config/labelgate.toml");

/// The 1-based line of the first line of `text` that starts with `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.starts_with(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle:?} not in the config"))
}

fn diagnostics(text: &str) -> Vec<labelgate_config::Diagnostic> {
    match labelgate_config::load_str(Some(std::path::Path::new("labelgate.toml")), text) {
        Ok(loaded) => loaded.warnings,
        Err(labelgate_config::LoadError::Invalid(d)) => d,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_shipped_config_has_no_problem() {
    assert!(diagnostics(SHIPPED).is_empty(), "{:?}", diagnostics(SHIPPED));
}

#[test]
fn every_sections_problems_point_at_the_line_of_their_key() {
    let accounts = "\n[[accounts]]\nname = \"Broken\"\ntenant_id = \"a/b\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\n";
    let labels = "\n[[labels]]\nid = \"not-a-guid\"\nname = \"Broken\"\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "[[cloud_apps]]",
            SHIPPED.replacen("hosts = [\"wetransfer.com\", \"*.wetransfer.com\"]", "hosts = [\"bad host!\"]", 1),
            "hosts = [\"bad host!\"]",
            "host pattern",
        ),
        (
            "[policy]",
            SHIPPED.replacen("default_action = \"allow\"", "default_action = \"maybe\"", 1),
            "default_action = \"maybe\"",
            "maybe",
        ),
        (
            "[[policy.rules]]",
            SHIPPED.replacen("direction = \"upload\"\n", "direction = \"upload\"\nkinds = [\"nonsense\"]\n", 1),
            "kinds = [\"nonsense\"]",
            "nonsense",
        ),
        (
            "[proxy]",
            SHIPPED.replacen("allow_clients = [\"127.0.0.0/8\", \"::1/128\"]", "allow_clients = [\"10.0.0.0/99\"]", 1),
            "allow_clients = ",
            "allow_clients",
        ),
        ("[inspection]", SHIPPED.replacen("stream_holdback = 65536", "stream_holdback = 0", 1), "stream_holdback = 0", "stream_holdback"),
        ("[[accounts]]", format!("{SHIPPED}{accounts}"), "tenant_id = \"a/b\"", "tenant_id"),
        ("[[labels]]", format!("{SHIPPED}{labels}"), "id = \"not-a-guid\"", "not a GUID"),
    ];
    for (section, text, line_starts, message) in cases {
        let found = diagnostics(&text);
        let expected = line_of(&text, line_starts);
        assert!(
            found.iter().any(|d| d.line == expected && d.message.contains(message)),
            "{section}: expected a problem mentioning {message:?} at line {expected}, got {:?}",
            found.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
}
