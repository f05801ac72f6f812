//! Hostile bytes: whatever a file of a bundle holds, `check` answers accepted, rejected or held
//! (exit 0, 1 or 3), never panics, and a rejection names a file.

use crate::support::bundles::*;
use crate::support::check::*;
use proptest::prelude::*;

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
        let c = check(&d, &tmp.path().join("out"), &[]);
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
        zip_entries(&z, "", &files);
        let mut bytes = std::fs::read(&z).unwrap();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        std::fs::write(&z, &bytes).unwrap();
        let c = check(&z, &tmp.path().join("out"), &[]);
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
    zip_entries(&z, "", &files);
    let c = check(&z, &tmp.path().join("out"), &[]);
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

// ---- Bundle resolution under hostile names (issue 12: "a fuzz target for bundle resolution")

/// One zip entry as a hostile generator makes it: which file it claims to be, how its name is
/// spelt, where it sits and what it holds.
#[derive(Debug, Clone)]
struct Planned {
    name: String,
    content: Vec<u8>,
}

/// Names a bundle may hold: the roster files of both formats in any case, a manifest, markers,
/// look-alikes (full-width letters, trailing spaces, control characters, no extension) and
/// junk.
fn hostile_name() -> impl Strategy<Value = String> {
    let stems = prop_oneof![
        Just("students".to_string()),
        Just("staff".to_string()),
        Just("locations".to_string()),
        Just("courses".to_string()),
        Just("classes".to_string()),
        Just("rosters".to_string()),
        Just("manifest".to_string()),
        Just("users".to_string()),
        Just("orgs".to_string()),
        Just("enrollments".to_string()),
        Just("\u{ff53}tudents".to_string()),
        Just("students ".to_string()),
        Just("stu\ndents".to_string()),
        Just("READY".to_string()),
        "[a-z\u{e9}\u{4e00}._-]{0,10}",
    ];
    let case = prop_oneof![Just(0u8), Just(1), Just(2)];
    let ext = prop_oneof![
        Just(".csv"),
        Just(".CSV"),
        Just(".Csv"),
        Just(""),
        Just(".csv.bak"),
        Just(".done"),
        Just(".txt")
    ];
    let folder = prop_oneof![
        Just(""),
        Just(""),
        Just("export/"),
        Just("EXPORT/"),
        Just("a/b/"),
        Just("a/b/c/d/e/f/"),
        Just("../"),
        Just("/abs/"),
        Just("x\\y\\"),
        Just("__MACOSX/"),
        Just("./"),
    ];
    (stems, case, ext, folder).prop_map(|(stem, case, ext, folder)| {
        let stem = match case {
            0 => stem,
            1 => stem.to_uppercase(),
            _ => stem
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect(),
        };
        format!("{folder}{stem}{ext}")
    })
}

/// What an entry holds: the real file its name claims (if it claims one), nothing, its header
/// alone, or garbage.
fn planned() -> impl Strategy<Value = Planned> {
    (
        hostile_name(),
        0u8..4,
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(name, kind, junk)| {
            let base = name
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let real = apple_files()
                .into_iter()
                .find(|(n, _)| *n == base)
                .map(|(_, c)| c.into_bytes());
            let content = match (kind, real) {
                (0 | 1, Some(c)) => c,
                (2, Some(c)) => c.split(|&b| b == b'\n').next().unwrap_or(&[]).to_vec(),
                (3, _) => junk,
                _ => Vec::new(),
            };
            Planned { name, content }
        })
}

/// A zip holding `entries` under exactly their names, duplicates included (the zip writer
/// refuses a name twice, so a later copy is written under a placeholder of the same length
/// and renamed in the bytes). Returns the names the zip holds.
fn hostile_zip(path: &std::path::Path, entries: &[Planned]) -> Vec<String> {
    let mut written: Vec<String> = Vec::new();
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let f = std::fs::File::create(path).unwrap();
    let mut w = ::zip::ZipWriter::new(f);
    for (i, e) in entries.iter().enumerate() {
        let mut name = e.name.clone();
        if written.contains(&name) {
            let tag = format!("#{i:02}#");
            if !name.is_ascii() || name.len() < tag.len() {
                continue;
            }
            let placeholder = format!("{tag}{}", &name[tag.len()..]);
            renames.push((placeholder.clone(), name.clone()));
            name = placeholder;
        }
        let o = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored);
        if w.start_file(name.as_str(), o).is_err() {
            continue;
        }
        std::io::Write::write_all(&mut w, &e.content).unwrap();
        written.push(name);
        held.push(e.name.clone());
    }
    w.finish().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    for (from, to) in &renames {
        let (from, to) = (from.as_bytes(), to.as_bytes());
        let mut i = 0;
        while i + from.len() <= bytes.len() {
            if &bytes[i..i + from.len()] == from {
                bytes[i..i + from.len()].copy_from_slice(to);
            }
            i += 1;
        }
    }
    std::fs::write(path, bytes).unwrap();
    held
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever names and folders a zip holds, resolution answers (a verdict, or an error that
    /// says what is wrong) without a panic; two CSV entries at the bundle's top that are one
    /// name ignoring case are never resolved silently; and an accepted bundle read only files
    /// whose names it was given.
    #[test]
    fn bundle_resolution_survives_hostile_names(
        real in prop_oneof![Just((0usize..6).collect::<Vec<_>>()), prop::collection::vec(0usize..6, 0..7)],
        extra in prop::collection::vec(planned(), 0..6),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let apple = apple_files();
        let mut entries: Vec<Planned> = real
            .iter()
            .map(|&i| Planned { name: apple[i].0.clone(), content: apple[i].1.clone().into_bytes() })
            .collect();
        entries.extend(extra);
        let z = tmp.path().join("b.zip");
        let held = hostile_zip(&z, &entries);
        let settings = rosterdrop::roster::engine::Settings::default();
        let r = rosterdrop::roster::check::check(&z, &settings, &rosterdrop::roster::engine::NoExternal);
        let top_csv: Vec<String> = held
            .iter()
            .map(|n| n.to_lowercase())
            .filter(|n| !n.contains(['/', '\\']) && n.ends_with(".csv"))
            .collect();
        let twice = top_csv.iter().enumerate().any(|(i, n)| top_csv[..i].contains(n));
        match r {
            Ok(o) => {
                let text = rosterdrop::roster::report::summary_text(&o);
                if twice {
                    prop_assert_eq!(o.verdict, rosterdrop::roster::engine::Verdict::Rejected, "{}", text);
                    prop_assert!(text.contains("twice"), "{}", text);
                }
                if o.verdict == rosterdrop::roster::engine::Verdict::Accepted {
                    prop_assert!(!twice);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The CSV reader alone (the fuzz target of issue 12): any bytes, either dialect, any
    /// encoding setting and any size hint give a table or errors, never a panic; every error
    /// names the file and a line within the input; every row read has the header's width.
    #[test]
    fn the_csv_reader_answers_any_bytes(
        body in hostile(),
        apple in any::<bool>(),
        win in any::<bool>(),
        hint in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
    ) {
        use rosterdrop::roster::csvio::{parse_sized, Encoding};
        let enc = if win { Encoding::Windows1252 } else { Encoding::Utf8 };
        let lines = body.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
        match parse_sized("t.csv", &body[..], apple, hint, enc) {
            Ok(t) => {
                for r in 0..t.len() {
                    prop_assert_eq!(t.fields(r).count(), t.header.len());
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors {
                    prop_assert_eq!(&e.file, "t.csv");
                    prop_assert!(e.line <= lines, "line {} of {}: {}", e.line, lines, e.message);
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
