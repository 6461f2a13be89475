//! OneDrive / SharePoint large-file upload through Graph, as `driveItem: createUploadSession`
//! documents it: `POST …/root:/{path}:/createUploadSession` (bearer token) answers an
//! `uploadUrl` on another host (`localhost` instead of `127.0.0.1`: the real one is a
//! SharePoint host, with a `tempauth` query instead of a token); fragments are `PUT`s with
//! `Content-Range`, in order (another start is 416 `invalidRange`), answered 202 with
//! `nextExpectedRanges` until the last, which creates the item (201, a `driveItem` with its
//! `sha256Hash`). `GET …/root:/{path}` reads an item back; `DELETE` on the session cancels it.

use super::{graph_error, guid, json_answer, verify, Answer, Shared};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Upload sessions in progress and the items they created.
#[derive(Default)]
pub(crate) struct Drive {
    sessions: HashMap<String, UploadSession>,
    items: HashMap<String, Value>,
}

struct UploadSession {
    name: String,
    tempauth: String,
    data: Vec<u8>,
}

/// The item path of `…/root:/{path}:/…` or `…/root:/{path}`, percent-decoded.
fn item_path(path: &str) -> Option<String> {
    let (_, rest) = path.split_once("/root:/")?;
    let item = rest.strip_suffix(":/createUploadSession").or_else(|| rest.strip_suffix(':')).unwrap_or(rest);
    Some(percent_encoding::percent_decode_str(item).decode_utf8_lossy().into_owned())
}

fn authorized(shared: &Shared, headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| verify(&shared.key, t))
        .is_some()
}

fn expiry() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
}

/// The drive routes, or `None` when `path` is none of them.
pub(crate) fn route(
    shared: &Shared,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Option<Answer> {
    let crid = headers.get("client-request-id").and_then(|v| v.to_str().ok());
    if let Some(id) = path.strip_prefix("/_upload/") {
        return Some(fragment(shared, method, id, query, headers, body, crid));
    }
    let on_drive = path.starts_with("/v1.0/me/drive/root:/") || (path.starts_with("/v1.0/drives/") && path.contains("/root:/"));
    if !on_drive {
        return None;
    }
    if !authorized(shared, headers) {
        return Some(graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.", crid));
    }
    let item = item_path(path)?;
    let mut drive = shared.drive.lock().unwrap_or_else(|e| e.into_inner());
    if *method == http::Method::POST && path.ends_with(":/createUploadSession") {
        let id = guid();
        let tempauth = guid().replace('-', "");
        drive.sessions.insert(id.clone(), UploadSession { name: item.clone(), tempauth: tempauth.clone(), data: Vec::new() });
        let port = shared.base.rsplit(':').next().unwrap_or("0");
        return Some(json_answer(
            200,
            &json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": format!("http://localhost:{port}/_upload/{id}?tempauth={tempauth}"),
                "expirationDateTime": expiry(),
                "nextExpectedRanges": ["0-"],
            }),
        ));
    }
    if *method == http::Method::GET {
        return Some(match drive.items.get(&item) {
            Some(v) => json_answer(200, v),
            None => graph_error(404, "itemNotFound", "The resource could not be found.", crid),
        });
    }
    Some(graph_error(405, "BadRequest", "Method not allowed", crid))
}

fn fragment(
    shared: &Shared,
    method: &http::Method,
    id: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
    crid: Option<&str>,
) -> Answer {
    let mut drive = shared.drive.lock().unwrap_or_else(|e| e.into_inner());
    let tempauth = query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "tempauth").map(|(_, v)| v.into_owned()));
    let Some(session) = drive.sessions.get_mut(id) else {
        return graph_error(404, "itemNotFound", "The upload session was not found.", crid);
    };
    if tempauth.as_deref() != Some(session.tempauth.as_str()) {
        return graph_error(401, "unauthenticated", "The tempauth of the upload URL is missing or wrong.", crid);
    }
    if *method == http::Method::DELETE {
        drive.sessions.remove(id);
        let mut a = json_answer(204, &Value::Null);
        *a.body_mut() = http_body_util::Full::new(bytes::Bytes::new());
        return a;
    }
    if *method != http::Method::PUT {
        return graph_error(405, "BadRequest", "Method not allowed", crid);
    }
    // Content-Range: bytes a-b/N
    let range = headers.get(http::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed = range.strip_prefix("bytes ").and_then(|r| r.split_once('/')).and_then(|(ab, n)| {
        let (a, b) = ab.split_once('-')?;
        Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?, n.parse::<usize>().ok()?))
    });
    let Some((a, b, total)) = parsed.filter(|(a, b, n)| a <= b && b < n && b - a + 1 == body.len()) else {
        return graph_error(400, "invalidRequest", "The Content-Range header is missing or does not match the body.", crid);
    };
    if a != session.data.len() {
        return graph_error(416, "invalidRange", &format!("Expected the fragment to start at {}.", session.data.len()), crid);
    }
    session.data.extend_from_slice(body);
    if b + 1 < total {
        return json_answer(202, &json!({"expirationDateTime": expiry(), "nextExpectedRanges": [format!("{}-", b + 1)]}));
    }
    let Some(session) = drive.sessions.remove(id) else { return graph_error(404, "itemNotFound", "gone", crid) };
    let sha: String = ring::digest::digest(&ring::digest::SHA256, &session.data).as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let name = session.name.rsplit('/').next().unwrap_or(&session.name).to_string();
    let item = json!({
        "id": guid(),
        "name": name,
        "size": session.data.len(),
        "file": {"mimeType": "application/octet-stream", "hashes": {"sha256Hash": sha}},
    });
    drive.items.insert(session.name, item.clone());
    json_answer(201, &item)
}
