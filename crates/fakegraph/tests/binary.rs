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

#[test]
fn the_wire_details_a_client_may_meet() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world: labelgate_fakegraph::World = serde_json::from_str(
        r#"{"page_size": 1, "tenants": [{"id": "11111111-1111-4111-8111-111111111111",
            "apps": [{"client_id": "app-1", "secrets": [{"value": "s3cret"}]}],
            "labels": [{"id": "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa", "name": "Confidential", "content_formats": ["file"]},
                       {"id": "a20cbae4-0c05-448c-b342-cb6c618d0957", "name": "Finance", "content_formats": ["file"], "parent": "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa"},
                       {"id": "4e4234dd-377b-42a3-935b-0e42f138fa23", "name": "General", "content_formats": ["email"]}]}]}"#,
    )
    .unwrap();
    let fake = runtime.block_on(labelgate_fakegraph::FakeGraph::start(world)).unwrap();
    let url = fake.url();
    let token_url = format!("{url}/11111111-1111-4111-8111-111111111111/oauth2/v2.0/token");
    // HTTP Basic client authentication (RFC 6749 §2.3.1) is accepted like the form fields.
    let (body, code) =
        curl(&["-u", "app-1:s3cret", "-d", "grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default", &token_url]);
    assert_eq!(code, "200", "{body}");
    let access = serde_json::from_str::<serde_json::Value>(&body).unwrap()["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Authorization: Bearer {access}");
    let v1 = format!("{url}/v1.0/security/dataSecurityAndGovernance/sensitivityLabels");
    // v1.0 nests sublabels and pages over top-level labels; the nextLink keeps the parameters.
    let (body, code) = curl(&["-H", &bearer, &v1]);
    assert_eq!(code, "200");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["value"][0]["sublabels"][0]["name"], "Finance");
    assert!(page["@odata.nextLink"].as_str().unwrap().contains("$skiptoken="));
    // $filter on applicableTo and on ids.
    let (body, _) = curl(&["-G", "-H", &bearer, "--data-urlencode", "$filter=applicableTo has 'email'", &v1]);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    assert_eq!(page["value"][0]["name"], "General");
    let (body, _) = curl(&["-G", "-H", &bearer, "--data-urlencode", "$filter=id in ('a20cbae4-0c05-448c-b342-cb6c618d0957')", &v1]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["value"][0]["name"], "Finance");
    let (body, code) = curl(&["-G", "-H", &bearer, "--data-urlencode", "$filter=name eq 'x'", &v1]);
    assert_eq!(code, "400", "{body}");
    assert_eq!(curl(&["-G", "-H", &bearer, "--data-urlencode", "isScopedToUser=true", &v1]).1, "400");
    // A skiptoken the fake did not mint, the retired legacy API, and a missing token.
    assert_eq!(curl(&["-H", &bearer, &format!("{v1}?$skiptoken=forged")]).1, "400");
    assert_eq!(curl(&["-H", &bearer, &format!("{url}/beta/informationProtection/policy/labels")]).1, "404");
    let (body, code) = curl(&[&v1]);
    assert_eq!(code, "401");
    assert!(body.contains("InvalidAuthenticationToken"), "{body}");
}
