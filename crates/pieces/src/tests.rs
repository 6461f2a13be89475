use super::*;

fn head<'a>(method: &'a Method, path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap, has_body: bool) -> RequestHead<'a> {
    RequestHead { method, authority: "Up.Example:443", path, query, headers, has_body }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

#[test]
fn content_range_grammar() {
    assert_eq!(content_range("bytes 0-99/300"), Some(ContentRange::Bytes { first: 0, last: 99, total: Some(300) }));
    assert_eq!(content_range("Bytes 5-5/*"), Some(ContentRange::Bytes { first: 5, last: 5, total: None }));
    assert_eq!(content_range("bytes */300"), Some(ContentRange::Unsatisfied { total: 300 }));
    for bad in
        ["bytes 9-1/300", "bytes 0-300/300", "items 0-1/2", "bytes -1-2/3", "bytes 0-99", "bytes */*", "bytes 0-99999999999999999999/*"]
    {
        assert_eq!(content_range(bad), None, "{bad}");
    }
}

#[test]
fn coverage_merges_in_any_order() {
    let mut c = Coverage::new();
    c.insert(200, 300);
    c.insert(0, 100);
    assert!(!c.is_complete(300));
    assert_eq!(c.overlaps(50, 250), vec![(50, 100), (200, 250)]);
    c.insert(100, 200);
    assert!(c.is_complete(300));
    assert_eq!(c.ranges(), &[(0, 300)]);
    c.insert(10, 20);
    assert_eq!(c.len(), 300);
    let mut d = Coverage::new();
    d.insert(0, 10);
    d.insert(20, 30);
    d.insert(5, 25);
    assert_eq!(d.ranges(), &[(0, 30)]);
}

#[test]
fn every_protocol_is_recognised() {
    let none = HeaderMap::new();
    // Google resumable: the start, the answer, and a piece under the same key.
    let Some(Recognised::Start(start)) =
        recognise(&head(&Method::POST, "/upload/drive/v3/files", Some("uploadType=resumable"), &none, true))
    else {
        panic!()
    };
    assert_eq!(start.protocol, Protocol::GoogleResumable);
    let answer = headers(&[("location", "https://up.example/upload/drive/v3/files?uploadType=resumable&upload_id=ABC")]);
    let key = start.session(200, &answer, b"").unwrap();
    let piece_headers = headers(&[("content-range", "bytes 0-9/20")]);
    let Some(Recognised::Piece(p)) =
        recognise(&head(&Method::PUT, "/upload/drive/v3/files", Some("upload_id=ABC&uploadType=resumable"), &piece_headers, true))
    else {
        panic!()
    };
    assert_eq!(p.key, key, "parameter order does not split a session");
    assert_eq!(p.protocol, Protocol::GoogleResumable);
    assert_eq!(start.session(404, &answer, b""), None);

    // Graph: the uploadUrl of the JSON answer, on another host.
    let Some(Recognised::Start(start)) =
        recognise(&head(&Method::POST, "/v1.0/me/drive/root:/Q3%20plan.docx:/createUploadSession", None, &none, false))
    else {
        panic!()
    };
    assert_eq!(start.name.as_deref(), Some("Q3 plan.docx"));
    let key = start
        .session(
            200,
            &none,
            br#"{"uploadUrl":"https://tenant.sharepoint.com/_api/up?guid=1&tempauth=x","expirationDateTime":"2026-12-01T00:00:00Z"}"#,
        )
        .unwrap();
    assert_eq!(key.as_str(), "tenant.sharepoint.com/_api/up?guid=1&tempauth=x");
    assert_eq!(key.host(), "tenant.sharepoint.com");

    // tus: creation (with its metadata), a PATCH, concatenation, termination.
    let tus = headers(&[("tus-resumable", "1.0.0"), ("upload-length", "500"), ("upload-metadata", "filename cmVwb3J0LmRvY3g=,secret")]);
    let Some(Recognised::Start(start)) = recognise(&head(&Method::POST, "/files/", None, &tus, false)) else { panic!() };
    assert_eq!((start.total, start.name.as_deref(), start.partial), (Some(500), Some("report.docx"), false));
    let key = start.session(201, &headers(&[("location", "/files/abc")]), b"").unwrap();
    assert_eq!(key.as_str(), "up.example/files/abc");
    let patch = headers(&[("tus-resumable", "1.0.0"), ("upload-offset", "100")]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PATCH, "/files/abc", None, &patch, true)) else { panic!() };
    assert_eq!((p.key, p.offset, p.end), (key.clone(), 100, None));
    let fin = headers(&[("tus-resumable", "1.0.0"), ("upload-concat", "final;/files/a https://up.example/files/b")]);
    let Some(Recognised::Concat(keys)) = recognise(&head(&Method::POST, "/files/", None, &fin, false)) else { panic!() };
    assert_eq!(keys.iter().map(SessionKey::as_str).collect::<Vec<_>>(), ["up.example/files/a", "up.example/files/b"]);
    assert_eq!(recognise(&head(&Method::DELETE, "/files/abc", None, &patch, false)), Some(Recognised::Abort(key)));

    // S3.
    let Some(Recognised::Start(start)) = recognise(&head(&Method::POST, "/bucket/q3.docx", Some("uploads"), &none, false)) else {
        panic!()
    };
    let key = start
        .session(200, &none, b"<?xml version=\"1.0\"?><InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>bucket</Bucket><Key>q3.docx</Key><UploadId>u-1</UploadId></InitiateMultipartUploadResult>")
        .unwrap();
    let Some(Recognised::Part(part)) = recognise(&head(&Method::PUT, "/bucket/q3.docx", Some("partNumber=2&uploadId=u-1"), &none, true))
    else {
        panic!()
    };
    assert_eq!((part.key.clone(), part.id.as_str(), part.copy), (key.clone(), "2", false));
    let copy = headers(&[("x-amz-copy-source", "/other/object")]);
    let Some(Recognised::Part(part)) = recognise(&head(&Method::PUT, "/bucket/q3.docx", Some("partNumber=1&uploadId=u-1"), &copy, false))
    else {
        panic!()
    };
    assert!(part.copy);
    assert_eq!(
        recognise(&head(&Method::POST, "/bucket/q3.docx", Some("uploadId=u-1"), &none, true)),
        Some(Recognised::Complete(key.clone(), PartList::S3))
    );
    // Azure block blobs: a block id is base64 (a `+` in the query is a `+`).
    let Some(Recognised::Part(block)) =
        recognise(&head(&Method::PUT, "/container/q3.docx", Some("comp=block&blockid=QUFB+w%3D%3D"), &none, true))
    else {
        panic!()
    };
    assert_eq!(
        (block.protocol, block.id.as_str(), block.key.as_str()),
        (Protocol::AzureBlocks, "QUFB+w==", "up.example/container/q3.docx")
    );
    assert_eq!(
        recognise(&head(&Method::PUT, "/container/q3.docx", Some("comp=blocklist"), &none, true)),
        Some(Recognised::Complete(block.key.clone(), PartList::AzureBlockList))
    );
    // Marks of a session that cannot be read make a piece whose place is unknown, never "no piece".
    for query in ["partNumber=0&uploadId=u-1", "partNumber=1&uploadId=u-1&uploadId=u-2"] {
        let Some(Recognised::Piece(p)) = recognise(&head(&Method::PUT, "/bucket/q3.docx", Some(query), &none, true)) else {
            panic!("{query}")
        };
        assert_eq!(p.offset, u64::MAX, "{query}");
    }
    // A parameter name percent-encoded is the parameter, as servers decode it.
    let Some(Recognised::Part(p)) = recognise(&head(&Method::PUT, "/bucket/q3.docx", Some("part%4Eumber=7&uploadId=u-1"), &none, true))
    else {
        panic!()
    };
    assert_eq!(p.id, "7");
    let tus_odd = headers(&[("tus-resumable", "1.0.0"), ("upload-offset", "1_000")]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PATCH, "/files/a", None, &tus_odd, true)) else { panic!() };
    assert_eq!(p.offset, u64::MAX);
    let tus_plus = headers(&[("tus-resumable", "1.0.0"), ("upload-offset", "+0010")]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PATCH, "/files/a", None, &tus_plus, true)) else { panic!() };
    assert_eq!(p.offset, 10, "a sign and leading zeros read as servers read them");
    let tus_length = headers(&[("tus-resumable", "1.0.0"), ("upload-length", "7x")]);
    let Some(Recognised::Start(s)) = recognise(&head(&Method::POST, "/files/", None, &tus_length, false)) else { panic!() };
    assert!(s.unreadable);
    // Another protocol's header on a Content-Range piece does not hide the piece.
    let mixed = headers(&[("tus-resumable", "1.0.0"), ("x-goog-upload-command", "x"), ("content-range", "bytes 0-9/20")]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PUT, "/dav/f", None, &mixed, true)) else { panic!() };
    assert_eq!((p.offset, p.end), (0, Some(10)));
    let mut odd_range = HeaderMap::new();
    odd_range.insert("content-range", http::HeaderValue::from_bytes(b"bytes\xa00-9/20").unwrap());
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PUT, "/dav/f", None, &odd_range, true)) else { panic!() };
    assert_eq!(p.offset, u64::MAX);
    let concat = headers(&[("tus-resumable", "1.0.0"), ("upload-concat", "final;/files/a /files/b?\"")]);
    let Some(Recognised::Concat(keys)) = recognise(&head(&Method::POST, "/files/", None, &concat, false)) else { panic!() };
    assert_eq!(keys.len(), 2);

    // X-Goog-Upload-Protocol.
    let goog = headers(&[
        ("x-goog-upload-protocol", "resumable"),
        ("x-goog-upload-command", "start"),
        ("x-goog-upload-header-content-length", "20"),
    ]);
    let Some(Recognised::Start(start)) = recognise(&head(&Method::POST, "/upload", None, &goog, true)) else { panic!() };
    let key = start
        .session(200, &headers(&[("x-goog-upload-url", "https://up.example/upload?upload_id=Z&upload_protocol=resumable")]), b"")
        .unwrap();
    let fin = headers(&[("x-goog-upload-command", "upload, finalize"), ("x-goog-upload-offset", "10")]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::POST, "/upload", Some("upload_id=Z&upload_protocol=resumable"), &fin, true))
    else {
        panic!()
    };
    assert_eq!((p.key, p.offset, p.finalize), (key, 10, true));

    // Dropbox: start (its answer names the session), append_v2 and finish by cursor.
    let Some(Recognised::Start(start)) = recognise(&head(&Method::POST, "/2/files/upload_session/start", None, &none, true)) else {
        panic!()
    };
    assert!(start.carries_first_bytes());
    let key = start.session(200, &none, br#"{"session_id": "pid_upload_session:ABC"}"#).unwrap();
    let append =
        headers(&[("dropbox-api-arg", r#"{"cursor": {"session_id": "pid_upload_session:ABC", "offset": 4194304}, "close": false}"#)]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::POST, "/2/files/upload_session/append_v2", None, &append, true)) else {
        panic!()
    };
    assert_eq!((p.key, p.offset, p.finalize), (key.clone(), 4194304, false));
    let fin = headers(&[(
        "dropbox-api-arg",
        r#"{"cursor": {"session_id": "pid_upload_session:ABC", "offset": 8}, "commit": {"path": "/a.docx"}}"#,
    )]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::POST, "/2/files/upload_session/finish", None, &fin, true)) else { panic!() };
    assert_eq!((p.key, p.finalize), (key, true));
    let bad = headers(&[("dropbox-api-arg", r#"{"cursor": {"session_id": 7}}"#)]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::POST, "/2/files/upload_session/append_v2", None, &bad, true)) else {
        panic!()
    };
    assert_eq!(p.offset, u64::MAX, "a cursor that cannot be read");

    // Generic Content-Range; a status query without a body is nothing to hold.
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PATCH, "/dav/file", Some("v=1"), &piece_headers, true)) else { panic!() };
    assert_eq!((p.protocol, p.key.as_str()), (Protocol::ContentRange, "up.example/dav/file?v=1"));
    let status = headers(&[("content-range", "bytes */20")]);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PUT, "/dav/file", None, &status, false)) else { panic!() };
    assert_eq!((p.offset, p.end, p.total), (20, Some(20), Some(20)), "a status query or a finalising request: an empty piece at the end");
    let query = headers(&[("content-range", "bytes */*")]);
    assert_eq!(recognise(&head(&Method::PUT, "/dav/file", None, &query, false)), None);
    let Some(Recognised::Piece(p)) = recognise(&head(&Method::PUT, "/dav/file", None, &status, true)) else { panic!() };
    assert_eq!(p.offset, u64::MAX, "bytes with no place are a piece the session cannot place");
    // Ordinary requests are nothing.
    assert_eq!(recognise(&head(&Method::POST, "/form", Some("a=1"), &none, true)), None);
}

#[test]
fn part_lists_are_read_in_their_order_and_bounded() {
    // References are read as any XML parser reads them.
    let refs =
        complete_multipart_parts(b"<CompleteMultipartUpload><Part><PartNumber>&#49;00</PartNumber></Part></CompleteMultipartUpload>")
            .unwrap();
    assert_eq!(refs[0].id, "100");
    assert_eq!(azure_block_list(b"<BlockList><Latest>b0000&#120;</Latest></BlockList>").unwrap()[0].id, "b0000x");
    assert_eq!(azure_block_list(b"<BlockList><Latest>a&unknown;</Latest></BlockList>"), Err(PartListError::Malformed));
    let xml = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&quot;AB12&quot;</ETag><PartNumber>2</PartNumber></Part><Part><PartNumber>1</PartNumber><ETag>"cd"</ETag></Part></CompleteMultipartUpload>"#;
    let listed = |id: &str, etag: Option<&str>| ListedPart { id: id.into(), etag: etag.map(str::to_string), committed: false };
    assert_eq!(complete_multipart_parts(xml).unwrap(), vec![listed("2", Some("ab12")), listed("1", Some("cd"))]);
    let azure = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QUFB+w==</Latest><Committed>QkJC</Committed><Uncommitted>Q0ND</Uncommitted></BlockList>";
    let blocks = azure_block_list(azure).unwrap();
    assert_eq!(
        blocks.iter().map(|b| (b.id.as_str(), b.committed)).collect::<Vec<_>>(),
        [("QUFB+w==", false), ("QkJC", true), ("Q0ND", false)]
    );
    assert_eq!(azure_block_list(b"<BlockList><Latest></Latest></BlockList>"), Err(PartListError::Malformed));
    assert_eq!(azure_block_list(b"<Other/>"), Err(PartListError::Malformed));
    assert_eq!(
        complete_multipart_parts(b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>"),
        Err(PartListError::Malformed)
    );
    assert_eq!(complete_multipart_parts(b"<CompleteMultipartUpload></CompleteMultipartUpload>"), Err(PartListError::Malformed));
    assert_eq!(complete_multipart_parts(b"not xml <"), Err(PartListError::Malformed));
    let many = format!("<CompleteMultipartUpload>{}</CompleteMultipartUpload>", "<Part><PartNumber>1</PartNumber></Part>".repeat(10_001));
    assert_eq!(complete_multipart_parts(many.as_bytes()), Err(PartListError::TooMany));
}
