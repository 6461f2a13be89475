//! End-to-end tests: the real `labelgate` binary driven as users drive it — `serve` with curl,
//! headless Chromium, Python client libraries (tuspy, google-resumable-media, boto3 against
//! moto, websockets), a real Prometheus server, the fake Graph — and the offline commands
//! (`inspect`, `check`, `policy test`, `accounts`). One test binary with a module per area, as
//! ripgrep keeps its integration tests; crate tests stay beside their code, and the load and
//! fault campaign's slice (`tests/campaign.rs`) is a binary of its own: it needs the machine to
//! itself.

mod common;

mod accounts;
mod accounts_write;
mod audit;
mod chromium;
mod classify;
mod cloud_apps;
mod exhaustion;
mod inspect;
mod nested;
mod pieces;
mod policy;
mod s3;
mod scan;
mod secure;
mod serve;
mod shapes;
mod smuggling;
mod ui;
mod websocket;
