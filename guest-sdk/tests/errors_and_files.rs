//! Natively: what HTTP errors and responses print, and what a `FileKey` puts into a key.

use std::time::{Duration, SystemTime};

use devstash::FileKey;
use devstash::http::{Error, ErrorKind, Response};

fn response(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn status_error(status: u16, body: impl Into<Vec<u8>>) -> Error {
    Error {
        kind: ErrorKind::Status(status),
        message: format!("GET https://api.example.com/x answered {status}"),
        response: Some(Box::new(response(status, body))),
    }
}

#[test]
fn a_status_error_shows_the_start_of_the_body() {
    let e = status_error(401, "{\"message\":\"Bad credentials\"}\n");
    assert_eq!(
        e.to_string(),
        "GET https://api.example.com/x answered 401: {\"message\":\"Bad credentials\"}"
    );

    // Cut at 200 bytes, on a character boundary, control characters escaped.
    let mut body = String::from("a\tb\u{7}c\r\n");
    body.push_str(&"x".repeat(192));
    body.push_str(&"é".repeat(100));
    let shown = status_error(500, body.clone()).to_string();
    let excerpt = shown.split_once("500: ").unwrap().1;
    assert!(excerpt.starts_with(r"a\tb\u{7}c\r\nxxx"), "{excerpt}");
    assert!(excerpt.ends_with("xxx…"), "{excerpt}");
    assert_eq!(excerpt.matches('x').count(), 192);

    // Not text, or nothing.
    assert!(
        status_error(502, vec![0xff; 10])
            .to_string()
            .ends_with(": <10 bytes, not UTF-8>")
    );
    assert!(
        status_error(503, "")
            .to_string()
            .ends_with(": <empty body>")
    );

    // Errors of other kinds are their message.
    let e = Error {
        kind: ErrorKind::Timeout,
        message: "GET https://api.example.com/x took longer than 30s".into(),
        response: None,
    };
    assert_eq!(e.to_string(), e.message);
}

#[test]
fn debug_shows_a_body_as_text_or_a_size_never_as_numbers() {
    let e = status_error(401, "{\"message\":\"Bad credentials\"}");
    let debug = format!("{e:?}");
    assert!(
        debug.contains(r#"body: "{\"message\":\"Bad credentials\"}""#),
        "{debug}"
    );
    assert!(!debug.contains("[123, 34"), "{debug}");

    let long = format!("{:?}", response(200, "y".repeat(5000)));
    assert!(long.ends_with("yyy\"… (5000 bytes) }"), "{long}");
    assert!(long.len() < 1200, "{}", long.len());

    let binary = format!("{:?}", response(200, vec![0x80u8; 7]));
    assert!(binary.ends_with("body: <7 bytes, not UTF-8> }"), "{binary}");
    let empty = format!("{:?}", response(204, ""));
    assert!(empty.ends_with(r#"body: "" }"#), "{empty}");
}

#[cfg(feature = "json")]
#[test]
fn a_body_that_is_not_the_json_expected_says_what_it_was() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Repo {
        stars: u64,
    }
    let e = response(200, "<html>rate limited</html>")
        .json::<Repo>()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
    assert!(e.to_string().contains("<html>rate limited</html>"), "{e}");
    let ok: Repo = response(200, r#"{"stars":3}"#).json().unwrap();
    assert_eq!(ok.stars, 3);
}

/// A scratch file of this test process.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("devstash-sdk-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_at(path: &std::path::Path, text: &str, mtime: SystemTime) {
    std::fs::write(path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn key(k: &FileKey) -> Vec<u8> {
    devstash::key::encode(k).unwrap()
}

#[test]
fn file_keys_follow_the_file() {
    let path = scratch("data.csv");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    write_at(&path, "a,1\n", t0);
    let (id0, content0) = (
        FileKey::identity(&path).unwrap(),
        FileKey::content(&path).unwrap(),
    );
    assert_eq!(id0.path(), path);
    assert_eq!((id0.size(), content0.size()), (4, 4));
    assert_ne!(key(&id0), key(&content0), "the two kinds never match");
    assert_eq!(key(&id0), key(&FileKey::identity(&path).unwrap()));
    assert_eq!(key(&content0), key(&FileKey::content(&path).unwrap()));

    // Other bytes, same size and time: only the content sees it.
    write_at(&path, "b,2\n", t0);
    assert_eq!(key(&id0), key(&FileKey::identity(&path).unwrap()));
    assert_ne!(key(&content0), key(&FileKey::content(&path).unwrap()));

    // Only the time: only the identity sees it.
    write_at(&path, "b,2\n", t0 + Duration::from_nanos(1));
    assert_ne!(key(&id0), key(&FileKey::identity(&path).unwrap()));
    let content1 = FileKey::content(&path).unwrap();
    write_at(&path, "b,2\n", t0 + Duration::from_secs(5));
    assert_eq!(key(&content1), key(&FileKey::content(&path).unwrap()));

    // The key holds the path: the same bytes elsewhere are another call.
    let other = scratch("copy.csv");
    write_at(&other, "b,2\n", t0 + Duration::from_secs(5));
    assert_ne!(key(&content1), key(&FileKey::content(&other).unwrap()));

    // Debug: readable, for the entry's arguments preview.
    let shown = format!("{:?}", FileKey::identity(&path).unwrap());
    assert!(
        shown.starts_with("FileKey::identity(")
            && shown.ends_with("4 bytes, modified 1700000005.000000000)"),
        "{shown}"
    );
    let shown = format!("{content1:?}");
    assert!(
        shown.starts_with("FileKey::content(") && shown.contains("blake3 "),
        "{shown}"
    );
    assert!(!shown.contains(", 0, "), "{shown}");

    // Not a file.
    let dir = path.parent().unwrap();
    for e in [
        FileKey::identity(dir).unwrap_err(),
        FileKey::content(dir).unwrap_err(),
    ] {
        assert!(e.to_string().contains("is not a file"), "{e}");
    }
    let missing = scratch("missing.csv");
    assert_eq!(
        FileKey::identity(&missing).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    assert_eq!(
        FileKey::content(&missing).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    let _ = std::fs::remove_dir_all(dir);
}
