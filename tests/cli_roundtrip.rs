//! Property: whatever a bundle holds, `check` of its `modified/` finds nothing to patch, and
//! writes the same files again.

mod support;

use proptest::prelude::*;
use support::*;

/// A value that stresses quoting: separators, quotes, backslashes, line breaks, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Ana",
        "O'Neil",
        "Lopez, Jr",
        "say \"hi\"",
        "semi;colon",
        "back\\slash",
        "two\nlines",
        "Zoë",
        "  padded  ",
        "",
        "Ben",
    ])
    .prop_map(str::to_string)
}

/// An id drawn from a small pool, so that references sometimes miss and ids repeat.
fn id(prefix: &'static str, pool: u8) -> impl Strategy<Value = String> {
    (0..pool).prop_map(move |i| format!("{prefix}{i}"))
}

#[derive(Debug, Clone)]
struct Dialect {
    semicolon: bool,
    crlf: bool,
    bom: bool,
}

fn field(v: &str, d: &Dialect, apple: bool) -> String {
    let sep = if d.semicolon { ';' } else { ',' };
    if v.contains([sep, '"', '\n', '\\']) {
        let inner = if apple {
            v.replace('\\', "\\\\").replace('"', "\\\"")
        } else {
            v.replace('"', "\"\"")
        };
        format!("\"{inner}\"")
    } else {
        v.to_string()
    }
}

fn csv(header: &str, rows: &[Vec<String>], d: &Dialect, apple: bool) -> String {
    let sep = if d.semicolon { ";" } else { "," };
    let nl = if d.crlf { "\r\n" } else { "\n" };
    let mut s = String::new();
    if d.bom {
        s.push('\u{feff}');
    }
    s.push_str(&header.replace(',', sep));
    s.push_str(nl);
    for r in rows {
        let f: Vec<String> = r.iter().map(|v| field(v, d, apple)).collect();
        s.push_str(&f.join(sep));
        s.push_str(nl);
    }
    s
}

fn dialect() -> impl Strategy<Value = Dialect> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(semicolon, crlf, bom)| Dialect {
        semicolon,
        crlf,
        bom,
    })
}

type Rows = Vec<Vec<String>>;

fn apple_bundle() -> impl Strategy<Value = (Dialect, [Rows; 6])> {
    let loc = prop::collection::vec((id("L", 4), text()).prop_map(|(a, b)| vec![a, b]), 1..4);
    let person = |p: &'static str| {
        (
            id(p, 8),
            text(),
            text(),
            id("L", 5),
            prop::sample::select(vec!["9", "K", "x", ""]),
        )
    };
    let students = prop::collection::vec(
        person("S").prop_map(|(i, f, l, loc, g)| {
            vec![
                i,
                String::new(),
                f,
                String::new(),
                l,
                g.into(),
                "s@x.org".into(),
                String::new(),
                String::new(),
                loc,
            ]
        }),
        0..8,
    );
    let staff = prop::collection::vec(
        person("T").prop_map(|(i, f, l, loc, _)| {
            vec![
                i,
                String::new(),
                f,
                String::new(),
                l,
                "t@x.org".into(),
                String::new(),
                loc,
            ]
        }),
        0..4,
    );
    let courses = prop::collection::vec(
        (id("C", 4), text(), id("L", 5)).prop_map(|(i, n, l)| vec![i, String::new(), n, l]),
        0..4,
    );
    let classes = prop::collection::vec(
        (id("K", 6), id("C", 5), id("T", 6), id("L", 5))
            .prop_map(|(k, c, t, l)| vec![k, String::new(), c, t, String::new(), String::new(), l]),
        0..6,
    );
    let rosters = prop::collection::vec(
        (id("R", 12), id("K", 7), id("S", 9)).prop_map(|(r, k, s)| vec![r, k, s]),
        0..12,
    );
    (dialect(), loc, students, staff, courses, classes, rosters)
        .prop_map(|(d, a, b, c, e, f, g)| (d, [a, b, c, e, f, g]))
}

fn oneroster_bundle() -> impl Strategy<Value = (Dialect, Rows, Rows, Rows)> {
    let users = prop::collection::vec(
        (
            id("U", 6),
            text(),
            text(),
            id("L", 3),
            prop::sample::select(vec!["true", "TRUE", "false"]),
        )
            .prop_map(|(u, g, f, o, e)| {
                let mut r = vec![String::new(); 18];
                r[0] = u.clone();
                r[3] = e.into();
                r[4] = o;
                r[5] = "student".into();
                r[6] = u;
                r[8] = g;
                r[9] = f;
                r[12] = "u@x.org".into();
                r
            }),
        0..6,
    );
    let orgs = prop::collection::vec(
        (id("L", 3), text()).prop_map(|(i, n)| {
            vec![
                i,
                String::new(),
                String::new(),
                if n.is_empty() { "x".into() } else { n },
                "school".into(),
                String::new(),
                String::new(),
            ]
        }),
        1..3,
    );
    let enrollments = prop::collection::vec(
        (id("E", 8), id("U", 7), id("L", 3)).prop_map(|(e, u, l)| {
            vec![
                e,
                String::new(),
                String::new(),
                "K1".into(),
                l,
                u,
                "student".into(),
                String::new(),
                String::new(),
                String::new(),
            ]
        }),
        0..8,
    );
    (dialect(), orgs, users, enrollments)
}

fn assert_fixpoint(dir: &std::path::Path) -> Result<(), TestCaseError> {
    let first = check(dir, &dir.with_extension("out1"), None);
    prop_assert!(first.code == 0 || first.code == 1, "{}", first.summary);
    if first.code == 1 {
        // Rejected bundles (e.g. structural errors) write no modified files to re-check.
        return Ok(());
    }
    let modified = first.out.join("modified");
    let second = check(&modified, &dir.with_extension("out2"), None);
    prop_assert_eq!(second.code, 0, "{}", second.summary);
    prop_assert!(
        second.rows.is_empty(),
        "second pass patched: {:?}",
        second.rows
    );
    prop_assert_eq!(read_dir(&second.out.join("modified")), read_dir(&modified));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn apple_modified_output_is_a_fixpoint((d, tables) in apple_bundle()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        std::fs::create_dir_all(&dir).unwrap();
        for ((file, header), rows) in APPLE_HEADERS.iter().zip(tables.iter()) {
            std::fs::write(dir.join(file), csv(header, rows, &d, true)).unwrap();
        }
        assert_fixpoint(&dir)?;
    }

    #[test]
    fn oneroster_modified_output_is_a_fixpoint((d, orgs, users, enr) in oneroster_bundle()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        std::fs::create_dir_all(&dir).unwrap();
        let plain = Dialect { semicolon: false, ..d.clone() };
        std::fs::write(dir.join("manifest.csv"), "propertyName,value\noneroster.version,1.1\nfile.orgs,bulk\nfile.users,bulk\nfile.enrollments,bulk\n").unwrap();
        std::fs::write(dir.join("orgs.csv"), csv("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId", &orgs, &plain, false)).unwrap();
        std::fs::write(dir.join("users.csv"), csv("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password", &users, &plain, false)).unwrap();
        std::fs::write(dir.join("enrollments.csv"), csv("sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate", &enr, &plain, false)).unwrap();
        assert_fixpoint(&dir)?;
    }
}
