//! `labelgate-fakegraph --world FILE` as a demo user runs it: it prints its URL, mints a token
//! for a registered app, lists labels with it, and refuses a broken world file by name.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl").args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}"]).args(args).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

#[test]
fn the_binary_serves_a_world_file() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.json");
    std::fs::write(
        &world,
        r#"{"tenants": [{"id": "11111111-1111-4111-8111-111111111111", "domains": ["contoso.onmicrosoft.com"],
            "apps": [{"client_id": "app-1", "secrets": [{"value": "s3cret"}]}],
            "labels": [{"id": "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa", "name": "Confidential", "sensitivity": 4}]}]}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelgate-fakegraph"))
        .arg("--world")
        .arg(&world)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let url = url.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (body, code) = curl(&[
        "-d",
        "client_id=app-1&client_secret=s3cret&grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
        &format!("{url}/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ]);
    assert_eq!(code, "200", "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(token["token_type"], "Bearer");
    let access = token["access_token"].as_str().unwrap();
    let (body, code) =
        curl(&["-H", &format!("Authorization: Bearer {access}"), &format!("{url}/beta/security/informationProtection/sensitivityLabels")]);
    assert_eq!(code, "200", "{body}");
    let labels: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(labels["value"][0]["name"], "Confidential");
    let (body, code) = curl(&[
        "-d",
        "client_id=app-1&client_secret=wrong&grant_type=client_credentials&scope=x%2F.default",
        &format!("{url}/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ]);
    assert_eq!(code, "401");
    assert!(body.contains("AADSTS7000215"), "{body}");
    let (log, _) = curl(&[&format!("{url}/_fake/log")]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&log).unwrap().as_array().unwrap().len(), 3);
    let _ = child.kill();
    let _ = child.wait();

    std::fs::write(&world, "{ not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_labelgate-fakegraph")).arg("--world").arg(&world).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("world.json"));
}
