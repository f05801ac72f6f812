//! Hostile bytes: whatever a file of a bundle holds, `check` answers accepted, rejected or held
//! (exit 0, 1 or 3), never panics, and a rejection names a file.

mod support;

use proptest::prelude::*;
use support::*;

/// Bytes that mix CSV structure with garbage: quotes, separators, escapes, line ends, NUL,
/// invalid UTF-8 and ordinary text.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"\"".to_vec()),
            Just(b",".to_vec()),
            Just(b";".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(vec![0u8]),
            Just(vec![0xff, 0xfe]),
            Just(b"\xEF\xBB\xBF".to_vec()),
            "[a-zA-Z0-9 _@.-]{1,8}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 1..6),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_file_content_is_answered_without_a_panic(file in 0usize..6, body in hostile(), keep_header in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let files = apple_files();
        let (name, content) = files[file].clone();
        let header = content.lines().next().unwrap_or("").to_string();
        let mut bytes = if keep_header { format!("{header}\n").into_bytes() } else { Vec::new() };
        bytes.extend_from_slice(&body);
        let d = tmp.path().join("b");
        std::fs::create_dir_all(&d).unwrap();
        for (n, c) in &files {
            if *n != name {
                std::fs::write(d.join(n), c).unwrap();
            }
        }
        std::fs::write(d.join(name.as_str()), &bytes).unwrap();
        let c = check(&d, &tmp.path().join("out"), None);
        prop_assert!(matches!(c.code, 0 | 1 | 3), "exit {}: {}", c.code, c.stderr);
        if c.code == 1 && !c.summary.contains("patching is off") {
            prop_assert!(c.summary.contains(".csv"), "a rejection names the file:\n{}", c.summary);
        }
    }

    #[test]
    fn a_mutated_zip_is_answered_without_a_panic(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let tmp = tempfile::tempdir().unwrap();
        let files: Vec<(String, Vec<u8>)> = apple_files().into_iter().map(|(n, c)| (n, c.into_bytes())).collect();
        let z = tmp.path().join("b.zip");
        zip(&z, "", &files);
        let mut bytes = std::fs::read(&z).unwrap();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        std::fs::write(&z, &bytes).unwrap();
        let c = check(&z, &tmp.path().join("out"), None);
        prop_assert!(matches!(c.code, 0 | 1 | 3), "exit {}: {}", c.code, c.stderr);
    }
}

/// No upload can write lines of its own into summary.txt (and so the admins' email): a zip entry
/// name and an id with line breaks are shown with escapes (issue 12, item 9).
#[test]
fn uploaded_names_cannot_write_lines_into_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = "ACTION REQUIRED: reply with the admin password";
    let mut files: Vec<(String, Vec<u8>)> = apple_files()
        .into_iter()
        .map(|(n, c)| (n, c.into_bytes()))
        .collect();
    files.push((format!("notes\n{evil}\n-- \nIT Support.txt"), b"x".to_vec()));
    let students = files.iter_mut().find(|f| f.0 == "students.csv").unwrap();
    let mut text = String::from_utf8(students.1.clone()).unwrap();
    text.push_str(&format!("\"S9\r\n{evil}\",,Eve,,Mallory,9,,,,L1\n"));
    students.1 = text.into_bytes();
    let z = tmp.path().join("b.zip");
    zip(&z, "", &files);
    let c = check(&z, &tmp.path().join("out"), None);
    assert!(matches!(c.code, 0 | 1 | 3), "exit {}: {}", c.code, c.stderr);
    for line in c.summary.lines() {
        assert!(
            !line.trim_start().starts_with("ACTION REQUIRED") && line != "-- ",
            "an uploaded name wrote its own line:\n{}",
            c.summary
        );
    }
    assert!(
        c.summary.contains("notes\\nACTION REQUIRED"),
        "the entry name is shown escaped:\n{}",
        c.summary
    );
    assert!(
        // (The reader turns CRLF inside a field into LF, as it does everywhere.)
        c.summary.contains("S9\\nACTION REQUIRED"),
        "the id is shown escaped:\n{}",
        c.summary
    );
}
