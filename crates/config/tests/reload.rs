//! Reload under concurrent evaluation: readers evaluate continuously while the file is rewritten
//! with valid and invalid versions; no read ever fails, invalid files never take effect, and
//! SIGHUP forces a reload.

use labelgate_config::{load_path, ReloadOutcome, Reloader};
use labelgate_policy::{Action, Direction, FileFacts, FileLabel, Transaction};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(action: &str) -> String {
    format!("[[cloud_apps]]\nname = \"Dropbox\"\nhosts = [\"*.dropbox.com\"]\ntags = [\"Unsanctioned\"]\n[[policy.rules]]\nname = \"labeled\"\naction = \"{action}\"\nlabeled = true\n")
}

fn evaluate(reloader: &Reloader) -> Action {
    let config = reloader.current();
    let (policy, _) = config.resolve(config.static_catalog());
    let files = [FileFacts {
        name: None,
        kind: "docx".into(),
        labels: vec![FileLabel { id: "f42aa342-8706-4288-bd11-ebb85995028c".into(), tenant: None }],
        unscannable: None,
        detected: Vec::new(),
    }];
    policy
        .evaluate(&Transaction {
            direction: Direction::Upload,
            method: "POST",
            host: "www.dropbox.com",
            url: "https://www.dropbox.com/",
            user: None,
            groups: &[],
            files: &files,
            path: None,
        })
        .action
}

#[test]
fn swaps_under_concurrent_evaluation_and_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labelgate.toml");
    std::fs::write(&path, config("block")).unwrap();
    let reloader = Reloader::new(load_path(&path).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let evaluations = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (r, stop, n) = (Arc::clone(&reloader), Arc::clone(&stop), Arc::clone(&evaluations));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let a = evaluate(&r);
                    assert!(matches!(a, Action::Block | Action::Audit), "only valid configs are ever in force: {a:?}");
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for round in 0..20 {
        let valid = if round % 2 == 0 { "audit" } else { "block" };
        std::fs::write(&path, config(valid)).unwrap();
        assert!(matches!(reloader.reload(false), ReloadOutcome::Applied));
        assert_eq!(evaluate(&reloader), if valid == "audit" { Action::Audit } else { Action::Block });
        // A broken file (the action "allow" would be observable if it slipped through).
        std::fs::write(&path, config("allow").replace("labeled = true", "labeled = maybe")).unwrap();
        assert!(matches!(reloader.reload(false), ReloadOutcome::Rejected(_)));
        assert_eq!(evaluate(&reloader), if valid == "audit" { Action::Audit } else { Action::Block }, "the old config stays");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("no reader failed");
    }
    let stats = reloader.stats();
    assert_eq!((stats.reloads, stats.rejected), (20, 20));
    assert!(reloader.last_rejection()[0].to_string().contains(":8:11: error:"), "{:?}", reloader.last_rejection());
    assert!(evaluations.load(Ordering::Relaxed) > 0);
}

#[test]
fn watch_picks_up_changes_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labelgate.toml");
    std::fs::write(&path, config("block")).unwrap();
    let reloader = Reloader::new(load_path(&path).unwrap());
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    let _watch = reloader.watch(Duration::from_millis(20), move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    std::fs::write(&path, config("audit")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while evaluate(&reloader) != Action::Audit && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(evaluate(&reloader), Action::Audit, "a changed file is picked up");
    let before = reloader.stats().reloads;
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
    while reloader.stats().reloads == before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(reloader.stats().reloads > before, "SIGHUP forces a reload of an unchanged file");
}
