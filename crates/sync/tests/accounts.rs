//! The sync component against the fake identity platform + Graph on loopback: every status of
//! the status table, every fault mode a client can meet, paging, both API shapes, restarts.
//! Waits (Retry-After, backoff) run on a virtual clock and are asserted from it.

use labelgate_catalog::{Catalog, LabelCache};
use labelgate_fakegraph::{fault, App, AppSecret, FakeGraph, FakeLabel, FaultAction, Route, Tenant, TenantState, World};
use labelgate_sync::{AccountConfig, ClientOptions, Clock, ErrorKind, LabelApi, Status, SyncMetrics, SyncOptions, Syncer, VirtualClock};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const T1: &str = "11111111-1111-4111-8111-111111111111";
const T2: &str = "22222222-2222-4222-8222-222222222222";
const APP1: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const APP2: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const SECRET1: &str = "Zq8~first-tenant-secret-value-d41d8cd98f";
const SECRET2: &str = "Yp7~second-tenant-secret-value-00b204e98";
const GENERAL: &str = "4e4234dd-377b-42a3-935b-0e42f138fa23";
const CONFIDENTIAL: &str = "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa";
const FINANCE: &str = "a20cbae4-0c05-448c-b342-cb6c618d0957";
const SECRET_LABEL: &str = "f5dc2dea-db0f-47cd-8b20-a52e1590fb64";
const OLD: &str = "9e0f5a3b-64b7-4b0e-9e1b-2f6c2a7d0c11";

fn label(id: &str, name: &str, sensitivity: i32, parent: Option<&str>) -> FakeLabel {
    FakeLabel {
        id: id.into(),
        name: name.into(),
        sensitivity,
        is_active: true,
        content_formats: vec!["file".into(), "email".into()],
        parent: parent.map(str::to_string),
        tooltip: format!("Apply to {name} data"),
        ..FakeLabel::default()
    }
}

fn tenant(id: &str, domain: &str, client: &str, secret: &str) -> Tenant {
    Tenant {
        id: id.into(),
        domains: vec![domain.into()],
        apps: vec![App {
            client_id: client.into(),
            secrets: vec![AppSecret { value: secret.into(), expired: false }],
            roles: vec!["InformationProtectionPolicy.Read.All".into(), "SensitivityLabels.Read.All".into()],
            ..App::default()
        }],
        labels: vec![
            label(GENERAL, "General", 1, None),
            label(CONFIDENTIAL, "Confidential", 4, None),
            label(FINANCE, "Finance", 5, Some(CONFIDENTIAL)),
            FakeLabel { is_active: false, ..label(SECRET_LABEL, "Secret", 9, None) },
            label(OLD, "Old label", 2, None),
        ],
        ..Tenant::default()
    }
}

fn world() -> World {
    World {
        tenants: vec![tenant(T1, "contoso.onmicrosoft.com", APP1, SECRET1), tenant(T2, "fabrikam.onmicrosoft.com", APP2, SECRET2)],
        token_lifetime_secs: 3599,
        page_size: 2,
        faults: vec![],
    }
}

struct Rig {
    fake: FakeGraph,
    syncer: Arc<Syncer>,
    cache: Arc<LabelCache>,
    clock: Arc<VirtualClock>,
    registry: prometheus::Registry,
    dir: tempfile::TempDir,
}

fn account(name: &str, fake: &FakeGraph, tenant: &str, client: &str, secret_file: &str) -> AccountConfig {
    toml::from_str(&format!(
        "name = {name:?}\ntenant_id = {tenant:?}\nclient_id = {client:?}\nclient_secret_file = {secret_file:?}\nauthority_url = {:?}\ngraph_url = {:?}\n",
        fake.url(),
        fake.url()
    ))
    .expect("account config")
}

fn write_secrets(dir: &Path) {
    std::fs::write(dir.join("secret1"), format!("{SECRET1}\n")).unwrap();
    std::fs::write(dir.join("secret2"), SECRET2).unwrap();
    std::fs::write(dir.join("wrong"), "not-the-secret").unwrap();
}

fn options(dir: &Path) -> SyncOptions {
    SyncOptions {
        state_dir: dir.join("state"),
        base_dir: dir.to_path_buf(),
        client: ClientOptions { request_timeout: Duration::from_secs(2), ..ClientOptions::default() },
    }
}

async fn rig_with(world: World, accounts: impl Fn(&FakeGraph) -> Vec<AccountConfig>) -> Rig {
    let fake = FakeGraph::start(world).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let cache = Arc::new(LabelCache::new(Catalog::default()));
    let clock = Arc::new(VirtualClock::new(SystemTime::now()));
    let registry = prometheus::Registry::new();
    let metrics = SyncMetrics::register(&registry).unwrap();
    let syncer = Arc::new(
        Syncer::new(accounts(&fake), Arc::clone(&cache), options(dir.path()), clock.clone() as Arc<dyn Clock>, Some(metrics)).unwrap(),
    );
    Rig { fake, syncer, cache, clock, registry, dir }
}

async fn rig(edit: impl FnOnce(&mut AccountConfig)) -> Rig {
    let edit = std::sync::Mutex::new(Some(edit));
    rig_with(world(), move |fake| {
        let mut a = account("Contoso", fake, T1, APP1, "secret1");
        if let Some(f) = edit.lock().unwrap().take() {
            f(&mut a);
        }
        vec![a]
    })
    .await
}

fn statuses(r: &Rig, name: &str) -> Vec<Status> {
    r.syncer.account(name).unwrap().history.iter().map(|t| t.status).collect()
}

#[tokio::test]
async fn a_working_account_is_validated_then_retrieves_every_page_and_becomes_active() {
    let r = rig(|_| {}).await;
    let before = r.syncer.account("Contoso").unwrap();
    assert_eq!(before.status, Status::RetrievalPending);
    assert_eq!(before.last_attempt, None);
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::Active);
    assert_eq!(statuses(&r, "Contoso"), [Status::ValidationSuccess, Status::RetrievalPending, Status::Active]);
    assert_eq!(v.label_count, 5, "inactive labels are counted");
    assert!(v.last_retrieval.is_some() && v.last_attempt.is_some() && v.last_error.is_none());
    let catalog = r.cache.load();
    let finance = catalog.by_name(Some("Contoso"), "Confidential \\ Finance");
    assert_eq!(finance.len(), 1);
    assert_eq!(finance[0].id, FINANCE);
    assert_eq!(finance[0].tenant.as_deref(), Some(T1));
    assert!(!catalog.lookup(Some(T1), SECRET_LABEL).unwrap().is_active);
    // 5 labels at 2 a page: 3 pages, after one validation request and one token request.
    let log = r.fake.log();
    assert_eq!(log.iter().filter(|e| e.path.ends_with("/token")).count(), 1, "the token is cached");
    assert_eq!(log.iter().filter(|e| e.path.contains("sensitivityLabels")).count(), 4);
    // A second cycle of an active account: no validation request, the same token.
    r.fake.clear_log();
    r.syncer.refresh("Contoso").await.unwrap();
    let log = r.fake.log();
    assert_eq!(log.iter().filter(|e| e.path.ends_with("/token")).count(), 0);
    assert_eq!(log.iter().filter(|e| e.path.contains("sensitivityLabels")).count(), 3);
    let text = String::from_utf8(prometheus::TextEncoder::new().encode_to_string(&r.registry.gather()).unwrap().into_bytes()).unwrap();
    assert!(text.contains(r#"labelgate_account_status{account="Contoso",status="Active"} 1"#), "{text}");
    assert!(text.contains(r#"labelgate_account_labels{account="Contoso"} 5"#), "{text}");
}

#[tokio::test]
async fn the_v1_api_shape_gives_the_same_labels_with_their_parents() {
    let r = rig(|a| a.api = LabelApi::V1).await;
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!((v.status, v.label_count, v.api), (Status::Active, 5, "v1.0"));
    let log = r.fake.log();
    assert!(log.iter().any(|e| e.path == "/v1.0/security/dataSecurityAndGovernance/sensitivityLabels"));
    let labels = r.syncer.labels("Contoso").unwrap();
    let finance = labels.iter().find(|l| l.id == FINANCE).unwrap();
    assert_eq!(finance.parent.as_deref(), Some(CONFIDENTIAL));
    assert!(finance.priority > labels.iter().find(|l| l.id == GENERAL).unwrap().priority, "v1 priority is inverted into sensitivity order");
}

#[tokio::test]
async fn many_pages_duplicates_empty_pages_and_a_next_link_loop() {
    let mut w = world();
    w.page_size = 3;
    let extra: Vec<FakeLabel> =
        (0..250).map(|i| label(&format!("00000000-0000-4000-8000-{i:012}"), &format!("Bulk {i}"), 1, None)).collect();
    w.tenants[0].labels.extend(extra);
    // The same id twice (on different pages): one label.
    w.tenants[0].labels.push(label(GENERAL, "General again", 1, None));
    let r = rig_with(w, |fake| vec![account("Contoso", fake, T1, APP1, "secret1")]).await;
    r.fake.fault(labelgate_fakegraph::Fault { page: Some(2), ..fault(Route::Labels, 1, FaultAction::EmptyPage) });
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!((v.status, v.label_count), (Status::Active, 255));
    assert_eq!(r.syncer.labels("Contoso").unwrap().iter().find(|l| l.id == GENERAL).unwrap().name, "General");
    // A nextLink that points back at its own page: the loop is cut, the labels de-duplicated.
    r.fake.fault(labelgate_fakegraph::Fault { page: Some(1), ..fault(Route::Labels, 0, FaultAction::NextLinkLoop) });
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::Active);
    assert_eq!(v.label_count, 3);
}

#[tokio::test]
async fn retrieval_disabled_is_validated_then_tenant_inactive() {
    let r = rig(|a| a.retrieval = false).await;
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::TenantInactive);
    assert_eq!(statuses(&r, "Contoso"), [Status::ValidationSuccess, Status::TenantInactive]);
    assert_eq!(v.label_count, 0);
    assert!(!v.retrieval && v.last_error.is_none());
    assert!(r.cache.load().is_empty());
    // It was validated with one label request, and nothing more.
    assert_eq!(r.fake.log().iter().filter(|e| e.path.contains("sensitivityLabels")).count(), 1);
}

async fn refused(edit: impl FnOnce(&mut World), account_edit: impl FnOnce(&mut AccountConfig)) -> (Rig, labelgate_sync::AccountView) {
    let mut w = world();
    edit(&mut w);
    let account_edit = std::sync::Mutex::new(Some(account_edit));
    let r = rig_with(w, move |fake| {
        let mut a = account("Contoso", fake, T1, APP1, "secret1");
        if let Some(f) = account_edit.lock().unwrap().take() {
            f(&mut a);
        }
        vec![a]
    })
    .await;
    let v = r.syncer.refresh("Contoso").await.unwrap();
    (r, v)
}

#[tokio::test]
async fn identity_refusals_are_validation_failed_with_their_codes() {
    type Case = (&'static str, Box<dyn FnOnce(&mut World)>, Box<dyn FnOnce(&mut AccountConfig)>, u32, u16);
    let cases: Vec<Case> = vec![
        ("bad secret", Box::new(|_| {}), Box::new(|a| a.client_secret_file = Some("wrong".into())), 7000215, 401),
        ("expired secret", Box::new(|w| w.tenants[0].apps[0].secrets[0].expired = true), Box::new(|_| {}), 7000222, 401),
        ("unknown app", Box::new(|_| {}), Box::new(|a| a.client_id = "bbbbbbbb-0000-4000-8000-000000000009".into()), 700016, 400),
        ("disabled app", Box::new(|w| w.tenants[0].apps[0].disabled = true), Box::new(|_| {}), 7000112, 400),
        ("unknown tenant", Box::new(|_| {}), Box::new(|a| a.tenant_id = "33333333-3333-4333-8333-333333333333".into()), 90002, 400),
        ("malformed tenant", Box::new(|_| {}), Box::new(|a| a.tenant_id = "not a tenant".into()), 900023, 400),
        ("bad scope", Box::new(|_| {}), Box::new(|a| a.scope = "https://graph.microsoft.com/User.Read".into()), 1002012, 400),
        (
            "tenant gone, invalid_request spelling",
            Box::new(|w| {
                w.tenants[0].state = TenantState::NotFound;
                w.tenants[0].not_found_error = Some("invalid_request".into());
            }),
            Box::new(|_| {}),
            90002,
            400,
        ),
    ];
    for (what, world_edit, account_edit, code, http) in cases {
        let (r, v) = refused(world_edit, account_edit).await;
        assert_eq!(v.status, Status::ValidationFailed, "{what}");
        let e = v.last_error.clone().expect(what);
        assert_eq!((e.aadsts, e.http_status), (Some(code), Some(http)), "{what}: {e:?}");
        assert!(e.request_id.is_some(), "{what}: the trace id is kept for support");
        assert!(r.cache.load().is_empty(), "{what}");
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains(SECRET1) && !json.contains("not-the-secret"), "{what}: {json}");
    }
}

#[tokio::test]
async fn the_client_always_asks_for_a_default_scope_and_sends_a_form() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    let log = r.fake.log();
    let token = log.iter().find(|e| e.path.ends_with("/token")).unwrap();
    assert_eq!(token.scope.as_deref(), Some("https://graph.microsoft.com/.default"));
    assert_eq!(token.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(token.form_fields, ["client_id", "scope", "grant_type", "client_secret"]);
    // Request hygiene: a fresh client-request-id per request, a User-Agent, no secret in a URL.
    let ids: std::collections::HashSet<_> = log.iter().map(|e| e.client_request_id.clone().expect("client-request-id")).collect();
    assert_eq!(ids.len(), log.len());
    assert!(log.iter().all(|e| e.user_agent.as_deref().is_some_and(|u| u.starts_with("labelgate/"))));
    assert!(log.iter().all(|e| !format!("{}{:?}", e.path, e.query).contains(SECRET1)));
    assert!(log.iter().filter(|e| e.path.contains("sensitivityLabels")).all(|e| e.authorization));
}

#[tokio::test]
async fn blocked_and_decommissioned_tenants_are_tenant_inactive() {
    for (state, code) in [(TenantState::BlockedInactive, 5000225), (TenantState::Decommissioned, 5000224)] {
        let (_r, v) = refused(|w| w.tenants[0].state = state, |_| {}).await;
        assert_eq!(v.status, Status::TenantInactive, "{state:?}");
        assert_eq!(v.last_error.unwrap().aadsts, Some(code));
    }
}

#[tokio::test]
async fn a_tenant_that_disappears_after_working_is_tenant_inactive_and_keeps_its_labels() {
    let r = rig(|_| {}).await;
    assert_eq!(r.syncer.refresh("Contoso").await.unwrap().status, Status::Active);
    r.fake.edit(|w| w.tenants[0].state = TenantState::NotFound);
    // The cached token still works: the cycle fails only once a new token is needed.
    r.clock.advance(Duration::from_secs(3600));
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::TenantInactive);
    assert_eq!(v.last_error.as_ref().unwrap().aadsts, Some(90002));
    assert_eq!(v.label_count, 5, "the last good labels stay");
    assert_eq!(r.cache.load().len(), 5);
}

#[tokio::test]
async fn transient_token_failures_keep_the_status_and_the_labels() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    let actions = [
        fault(Route::Token, 0, FaultAction::Status { status: 503, code: None, message: None, aadsts: None, retry_after: Some("1".into()) }),
        fault(
            Route::Token,
            0,
            FaultAction::Status {
                status: 400,
                code: Some("temporarily_unavailable".into()),
                message: None,
                aadsts: Some(90033),
                retry_after: None,
            },
        ),
        fault(
            Route::Token,
            0,
            FaultAction::Status {
                status: 429,
                code: Some("invalid_request".into()),
                message: None,
                aadsts: Some(50196),
                retry_after: Some("2".into()),
            },
        ),
        fault(Route::Token, 0, FaultAction::Malformed { status: Some(502) }),
        fault(Route::Token, 0, FaultAction::Malformed { status: Some(400) }),
        fault(Route::Token, 0, FaultAction::Reset),
        fault(Route::Token, 0, FaultAction::DelayMs(2500)),
    ];
    for f in actions {
        let what = format!("{:?}", f.action);
        r.fake.clear_faults();
        r.fake.fault(f);
        r.clock.advance(Duration::from_secs(3600)); // the cached token is due for renewal
        let v = r.syncer.refresh("Contoso").await.unwrap();
        assert_eq!(v.status, Status::Active, "{what}");
        let e = v.last_error.expect(&what);
        assert!(
            matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Throttled | ErrorKind::Malformed | ErrorKind::Network),
            "{what}: {e:?}"
        );
        assert_eq!(v.label_count, 5, "{what}");
        assert_eq!(r.cache.load().len(), 5, "{what}");
    }
    // Once the identity platform recovers, the next cycle clears the error.
    r.fake.clear_faults();
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert!(v.last_error.is_none());
}

#[tokio::test]
async fn graph_throttling_honours_retry_after_then_succeeds() {
    let r = rig(|_| {}).await;
    r.fake.fault(fault(
        Route::Labels,
        2,
        FaultAction::Status { status: 429, code: None, message: None, aadsts: None, retry_after: Some("7".into()) },
    ));
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::Active);
    assert_eq!(r.clock.waits(), [Duration::from_secs(7), Duration::from_secs(7)]);
    // A Retry-After as an HTTP date.
    let r = rig(|_| {}).await;
    let at = httpdate::fmt_http_date(r.clock.now() + Duration::from_secs(30));
    r.fake.fault(fault(
        Route::Labels,
        1,
        FaultAction::Status { status: 503, code: None, message: None, aadsts: None, retry_after: Some(at) },
    ));
    assert_eq!(r.syncer.refresh("Contoso").await.unwrap().status, Status::Active);
    let waited = r.clock.waits()[0];
    assert!(waited >= Duration::from_secs(28) && waited <= Duration::from_secs(30), "{waited:?}");
}

#[tokio::test]
async fn graph_5xx_backs_off_a_bounded_number_of_times_and_keeps_the_status() {
    for status in [500u16, 502, 503, 504, 429] {
        let r = rig(|_| {}).await;
        r.syncer.refresh("Contoso").await.unwrap();
        let first = r.clock.waits().len();
        r.fake.fault(fault(Route::Labels, 0, FaultAction::Status { status, code: None, message: None, aadsts: None, retry_after: None }));
        let v = r.syncer.refresh("Contoso").await.unwrap();
        assert_eq!(v.status, Status::Active, "{status}");
        let e = v.last_error.unwrap();
        assert_eq!(e.http_status, Some(status));
        assert_eq!(e.kind, if status == 429 { ErrorKind::Throttled } else { ErrorKind::Unavailable });
        let waits = &r.clock.waits()[first..];
        assert_eq!(waits.len(), 3, "4 attempts, 3 waits: {waits:?}");
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(60)), "{waits:?}");
        assert_eq!(r.fake.log().iter().filter(|e| e.status == status).count(), 4);
    }
    // A Retry-After beyond the cap abandons the cycle at once.
    let r = rig(|_| {}).await;
    r.fake.fault(fault(
        Route::Labels,
        0,
        FaultAction::Status { status: 429, code: None, message: None, aadsts: None, retry_after: Some("3600".into()) },
    ));
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::RetrievalPending, "still pending");
    assert!(r.clock.waits().is_empty());
}

#[tokio::test]
async fn a_failure_on_page_two_commits_nothing_and_the_next_cycle_succeeds() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    r.fake.edit(|w| w.tenants[0].labels[0].name = "General (renamed)".into());
    r.fake.fault(labelgate_fakegraph::Fault { page: Some(2), ..fault(Route::Labels, 0, FaultAction::Malformed { status: None }) });
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::Active);
    assert_eq!(v.last_error.unwrap().kind, ErrorKind::Malformed);
    assert_eq!(r.cache.load().lookup(Some(T1), GENERAL).unwrap().name, "General", "no partial label set");
    r.fake.clear_faults();
    r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(r.cache.load().lookup(Some(T1), GENERAL).unwrap().name, "General (renamed)");
}

#[tokio::test]
async fn an_expired_token_mid_paging_is_renewed_once_and_paging_resumes() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    r.fake.clear_log();
    r.fake.fault(labelgate_fakegraph::Fault { page: Some(2), ..fault(Route::Labels, 1, FaultAction::ExpiredToken) });
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!((v.status, v.label_count), (Status::Active, 5));
    assert!(v.last_error.is_none());
    let log = r.fake.log();
    let seq: Vec<String> =
        log.iter().map(|e| format!("{} {}", if e.path.ends_with("/token") { "token" } else { "labels" }, e.status)).collect();
    assert_eq!(seq, ["labels 200", "labels 401", "token 200", "labels 200", "labels 200"], "{seq:?}");
    // The renewed request asks for the same page again.
    assert_eq!(log[1].query, log[3].query);
}

#[tokio::test]
async fn a_token_refused_again_after_renewal_is_validation_failed() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    r.fake.fault(fault(Route::Labels, 0, FaultAction::ExpiredToken));
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::ValidationFailed);
    let e = v.last_error.unwrap();
    assert_eq!(
        (e.kind, e.http_status, e.graph_code.as_deref()),
        (ErrorKind::Authentication, Some(401), Some("InvalidAuthenticationToken"))
    );
    assert_eq!(r.cache.load().len(), 5, "the last good labels stay for policy continuity");
}

#[tokio::test]
async fn permission_refusals_are_validation_failed() {
    let (_r, v) = refused(|w| w.tenants[0].apps[0].roles.clear(), |_| {}).await;
    assert_eq!(v.status, Status::ValidationFailed);
    let e = v.last_error.unwrap();
    assert_eq!((e.kind, e.http_status, e.graph_code.as_deref()), (ErrorKind::Permission, Some(403), Some("Authorization_RequestDenied")));
    assert!(e.request_id.is_some());
    let r = rig(|_| {}).await;
    r.fake.fault(fault(
        Route::Labels,
        0,
        FaultAction::Status {
            status: 403,
            code: Some("UnknownError".into()),
            message: Some(String::new()),
            aadsts: None,
            retry_after: None,
        },
    ));
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::ValidationFailed);
    assert_eq!(v.last_error.unwrap().graph_code.as_deref(), Some("UnknownError"));
}

#[tokio::test]
async fn a_tenant_without_a_label_policy_is_active_with_no_labels() {
    let (_r, v) = refused(|w| w.tenants[0].no_label_policy = true, |_| {}).await;
    assert_eq!((v.status, v.label_count), (Status::Active, 0));
    assert!(v.last_error.is_none());
}

#[tokio::test]
async fn label_churn_between_cycles() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    r.fake.edit(|w| {
        let labels = &mut w.tenants[0].labels;
        labels.retain(|l| l.id != OLD); // deleted
        labels[0].name = "Public".into(); // renamed
        labels.iter_mut().find(|l| l.id == FINANCE).unwrap().parent = Some(GENERAL.into()); // moved
        labels.iter_mut().find(|l| l.id == CONFIDENTIAL).unwrap().is_active = false; // disabled
        labels.push(label("5e4234dd-377b-42a3-935b-0e42f138fa24", "New", 3, None));
        // added
    });
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.label_count, 5, "the deleted label is not counted");
    let catalog = r.cache.load();
    let old = catalog.lookup(Some(T1), OLD).expect("a deleted label stays known");
    assert!(old.deleted);
    assert!(!catalog.lookup(Some(T1), CONFIDENTIAL).unwrap().is_active);
    assert_eq!(catalog.lookup(Some(T1), GENERAL).unwrap().name, "Public");
    assert_eq!(catalog.by_name(Some("Contoso"), "Public \\ Finance")[0].id, FINANCE);
    assert!(catalog.lookup(Some(T1), "5e4234dd-377b-42a3-935b-0e42f138fa24").is_some());
    // It comes back: no longer deleted.
    r.fake.edit(|w| w.tenants[0].labels.push(label(OLD, "Old label", 2, None)));
    r.syncer.refresh("Contoso").await.unwrap();
    assert!(!r.cache.load().lookup(Some(T1), OLD).unwrap().deleted);
}

#[tokio::test]
async fn accounts_never_share_tokens_or_labels() {
    let mut w = world();
    w.tenants[1].labels = vec![label("7a7a7a7a-0000-4000-8000-000000000001", "Fabrikam Only", 3, None)];
    let r = rig_with(w, |fake| {
        vec![
            account("Contoso", fake, T1, APP1, "secret1"),
            account("Fabrikam", fake, "fabrikam.onmicrosoft.com", APP2, "secret2"),
            // A second account on the first tenant, its own app registration and token.
            account("Contoso EU", fake, "contoso.onmicrosoft.com", APP1, "secret1"),
        ]
    })
    .await;
    let (a, b, c) = tokio::join!(r.syncer.refresh("Contoso"), r.syncer.refresh("Fabrikam"), r.syncer.refresh("Contoso EU"));
    assert_eq!(a.unwrap().label_count, 5);
    assert_eq!(b.unwrap().label_count, 1);
    assert_eq!(c.unwrap().label_count, 5);
    let catalog = r.cache.load();
    let only = catalog.by_name(None, "Fabrikam Only");
    assert_eq!(only.len(), 1);
    assert_eq!(
        (only[0].account.as_deref(), only[0].tenant.as_deref()),
        (Some("Fabrikam"), Some(T2)),
        "the tenant GUID comes from the token of a domain-named tenant"
    );
    assert!(catalog.by_name(Some("Fabrikam"), "General").is_empty());
    let tokens = r.fake.log().iter().filter(|e| e.path.ends_with("/token")).count();
    assert_eq!(tokens, 3, "one token per account");
}

#[tokio::test]
async fn concurrent_refreshes_of_one_account_share_one_token_request() {
    let r = rig(|_| {}).await;
    let (a, b) = tokio::join!(r.syncer.refresh("Contoso"), r.syncer.refresh("Contoso"));
    assert_eq!((a.unwrap().status, b.unwrap().status), (Status::Active, Status::Active));
    assert_eq!(r.fake.log().iter().filter(|e| e.path.ends_with("/token")).count(), 1);
}

#[tokio::test]
async fn a_restart_with_graph_down_enforces_from_the_last_snapshot() {
    let r = rig(|_| {}).await;
    let before = r.syncer.refresh("Contoso").await.unwrap();
    let config = account("Contoso", &r.fake, T1, APP1, "secret1");
    let Rig { fake, dir, .. } = r;
    drop(fake); // Graph and the identity platform are gone
    tokio::task::yield_now().await;
    let cache = Arc::new(LabelCache::new(Catalog::default()));
    let clock = Arc::new(VirtualClock::new(SystemTime::now()));
    let syncer = Syncer::new(vec![config.clone()], Arc::clone(&cache), options(dir.path()), clock as Arc<dyn Clock>, None).unwrap();
    assert_eq!(cache.load().len(), 5, "labels are back before any request");
    assert_eq!(cache.load().by_name(None, "Confidential \\ Finance")[0].id, FINANCE);
    let v = syncer.account("Contoso").unwrap();
    assert_eq!((v.status, v.label_count, &v.last_retrieval), (Status::Active, 5, &before.last_retrieval));
    let v = syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::Active, "unreachable is transient");
    assert_eq!(v.last_error.unwrap().kind, ErrorKind::Network);
    assert_eq!(cache.load().len(), 5);
    // The snapshot is private to the identity it was made with.
    let mut other = config;
    other.client_id = APP2.into();
    let cache = Arc::new(LabelCache::new(Catalog::default()));
    let clock = Arc::new(VirtualClock::new(SystemTime::now()));
    let _s = Syncer::new(vec![other], Arc::clone(&cache), options(dir.path()), clock as Arc<dyn Clock>, None).unwrap();
    assert!(cache.load().is_empty());
}

#[tokio::test]
async fn a_missing_secret_is_validation_failed_naming_the_key() {
    let r = rig(|a| a.client_secret_file = Some("does-not-exist".into())).await;
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::ValidationFailed);
    let e = v.last_error.unwrap();
    assert_eq!(e.kind, ErrorKind::Configuration);
    assert!(e.message.starts_with("client_secret_file:"), "{}", e.message);
    assert!(r.fake.log().is_empty(), "nothing was sent");
    drop(r.dir);
}

#[tokio::test]
async fn the_certificate_credential_signs_a_client_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.key");
    let cert = dir.path().join("app.pem");
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=labelgate test app"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed by scripts/test.sh");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let credential = labelgate_sync::CertificateCredential::load(&cert, &key).unwrap();
    let mut w = world();
    w.tenants[0].apps[0].cert_thumbprints_s256 = vec![credential.thumbprint_s256.clone()];
    let (cert, key) = (cert.clone(), key.clone());
    let r = rig_with(w, move |fake| {
        let mut a = account("Contoso", fake, T1, APP1, "unused");
        a.client_secret_file = None;
        a.certificate_file = Some(cert.clone());
        a.private_key_file = Some(key.clone());
        vec![a]
    })
    .await;
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::Active, "{:?}", v.last_error);
    assert_eq!(v.credential, "certificate");
    let token = r.fake.log().into_iter().find(|e| e.path.ends_with("/token")).unwrap();
    assert!(token.form_fields.contains(&"client_assertion".to_string()) && !token.form_fields.contains(&"client_secret".to_string()));
    // An unregistered certificate is refused.
    r.fake.edit(|w| w.tenants[0].apps[0].cert_thumbprints_s256.clear());
    r.clock.advance(Duration::from_secs(7200));
    let v = r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(v.status, Status::ValidationFailed);
    assert_eq!(v.last_error.unwrap().aadsts, Some(700027));
}

#[tokio::test]
async fn a_slow_tenant_does_not_delay_another() {
    let mut w = world();
    w.faults.push(labelgate_fakegraph::Fault { tenant: Some(T1.into()), ..fault(Route::Token, 0, FaultAction::DelayMs(1500)) });
    let r = rig_with(w, |fake| vec![account("Slow", fake, T1, APP1, "secret1"), account("Fast", fake, T2, APP2, "secret2")]).await;
    let syncer = Arc::clone(&r.syncer);
    let slow = tokio::spawn(async move { syncer.refresh("Slow").await });
    let fast = r.syncer.refresh("Fast").await.unwrap();
    assert_eq!(fast.status, Status::Active);
    assert_eq!(r.syncer.account("Slow").unwrap().status, Status::RetrievalPending, "the slow one is still on its way");
    // With a 2 s client timeout the slow token still arrives.
    assert_eq!(slow.await.unwrap().unwrap().status, Status::Active);
}

#[tokio::test]
async fn a_config_reload_adds_removes_and_restarts_accounts() {
    let r = rig(|_| {}).await;
    r.syncer.refresh("Contoso").await.unwrap();
    assert_eq!(r.cache.load().len(), 5);
    let changed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&changed);
    r.syncer.on_change(move || {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    // Unchanged Contoso stays as it is; Fabrikam is added.
    let contoso = account("Contoso", &r.fake, T1, APP1, "secret1");
    let fabrikam = account("Fabrikam", &r.fake, T2, APP2, "secret2");
    r.syncer.reconcile(vec![contoso.clone(), fabrikam.clone()], false);
    let names: Vec<String> = r.syncer.accounts().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["Contoso", "Fabrikam"]);
    assert_eq!(r.syncer.account("Contoso").unwrap().status, Status::Active, "an unchanged account keeps its state");
    assert_eq!(r.syncer.account("Fabrikam").unwrap().status, Status::RetrievalPending);
    r.syncer.refresh("Fabrikam").await.unwrap();
    assert_eq!(r.cache.load().len(), 10);
    // Contoso removed: its labels leave the catalog, its snapshot is deleted.
    r.syncer.reconcile(vec![fabrikam.clone()], false);
    assert!(r.syncer.account("Contoso").is_none());
    assert_eq!(r.cache.load().len(), 5);
    assert!(r.cache.load().by_name(Some("Contoso"), "General").is_empty());
    assert!(!r.dir.path().join("state/accounts/Contoso.json").exists());
    // Fabrikam edited to another identity: it starts over.
    let mut edited = fabrikam;
    edited.tenant_id = T1.into();
    edited.client_id = APP1.into();
    edited.client_secret_file = Some("secret1".into());
    r.syncer.reconcile(vec![edited], false);
    assert_eq!(r.syncer.account("Fabrikam").unwrap().status, Status::RetrievalPending);
    assert!(r.cache.load().is_empty());
    assert!(changed.load(std::sync::atomic::Ordering::SeqCst) >= 3, "policy is re-bound after each catalog change");
}
