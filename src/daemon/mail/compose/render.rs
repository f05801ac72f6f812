//! The same content as plain text and as HTML (every uploaded value HTML-escaped).

use super::*;

pub(super) fn render_text(c: &Content) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n{}", c.headline, c.action);
    for cmd in &c.commands {
        let _ = writeln!(s, "\n    {cmd}");
    }
    if !c.counts.is_empty() || !c.no_counts.is_empty() {
        s.push('\n');
    }
    if c.counts.is_empty() {
        if !c.no_counts.is_empty() {
            let _ = writeln!(s, "{}", c.no_counts);
        }
    } else {
        let _ = writeln!(s, "{}", c.counts_title);
        for r in &c.counts {
            if r.added + r.changed + r.removed == 0 {
                let _ = writeln!(s, "  {}: no change ({} now)", r.kind, r.now);
            } else {
                let _ = writeln!(
                    s,
                    "  {}: {} added, {} changed, {} removed ({} now)",
                    r.kind, r.added, r.changed, r.removed, r.now
                );
            }
        }
    }
    if !c.problems.is_empty() {
        let _ = writeln!(s, "\n{}", c.problems_title);
        for g in &c.problems {
            let _ = writeln!(s, "\n  {} ({}: {})", g.title, g.counted(), g.outcome);
            for i in &g.items {
                let _ = writeln!(s, "    - {i}");
            }
            if g.count > g.items.len() as u64 {
                let _ = writeln!(
                    s,
                    "    ... and {} more (patch-summary.csv has them all)",
                    g.count - g.items.len() as u64
                );
            }
        }
    }
    if let Some(g) = &c.filtered {
        let _ = writeln!(s, "\n{} ({}; {}).", g.title, g.counted(), g.outcome);
    }
    if !c.details.is_empty() {
        let _ = writeln!(s, "\nDetails:");
        for (k, v) in &c.details {
            let _ = writeln!(s, "  {k}: {v}");
        }
    }
    if !c.reports.is_empty() {
        s.push('\n');
        for l in &c.reports {
            let _ = writeln!(s, "{l}");
        }
    }
    s.push_str("\n-- \nrosterdrop: sent automatically after every batch.\n");
    s
}

pub(super) fn h(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_text(s)
}

pub(super) fn render_html(c: &Content) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    let _ = write!(
        s,
        "{}</title></head>\n<body style=\"font-family:sans-serif\">\n",
        h(&c.subject)
    );
    let _ = writeln!(s, "<p><strong>{}</strong></p>", h(&c.headline));
    let style = if c.action_needed {
        "background:#fff3cd;border-left:4px solid #d39e00;padding:6px"
    } else {
        "background:#e8f5e9;border-left:4px solid #2e7d32;padding:6px"
    };
    let _ = writeln!(s, "<p style=\"{style}\">{}</p>", h(&c.action));
    if !c.commands.is_empty() {
        s.push_str("<pre>");
        for cmd in &c.commands {
            let _ = writeln!(s, "{}", h(cmd));
        }
        s.push_str("</pre>\n");
    }
    if c.counts.is_empty() {
        if !c.no_counts.is_empty() {
            let _ = writeln!(s, "<p>{}</p>", h(&c.no_counts));
        }
    } else {
        let _ = writeln!(s, "<p>{}</p>", h(&c.counts_title));
        s.push_str(
            "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\n\
             <tr><th>records</th><th>added</th><th>changed</th><th>removed</th><th>now</th></tr>\n",
        );
        for r in &c.counts {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                h(&r.kind),
                r.added,
                r.changed,
                r.removed,
                r.now
            );
        }
        s.push_str("</table>\n");
    }
    if !c.problems.is_empty() {
        let _ = writeln!(s, "<h3>{}</h3>", h(&c.problems_title));
        for g in &c.problems {
            let _ = writeln!(
                s,
                "<div style=\"background:#fdecea;border-left:4px solid #c62828;padding:6px;margin:6px 0\">\
                 <p><strong>{}</strong> ({}: {})</p>\n<ul>",
                h(&g.title),
                h(&g.counted()),
                h(&g.outcome)
            );
            for i in &g.items {
                let _ = writeln!(s, "<li>{}</li>", h(i));
            }
            if g.count > g.items.len() as u64 {
                let _ = writeln!(
                    s,
                    "<li>... and {} more (patch-summary.csv has them all)</li>",
                    g.count - g.items.len() as u64
                );
            }
            s.push_str("</ul></div>\n");
        }
    }
    if let Some(g) = &c.filtered {
        let _ = writeln!(
            s,
            "<p>{} ({}; {}).</p>",
            h(&g.title),
            h(&g.counted()),
            h(&g.outcome)
        );
    }
    if !c.details.is_empty() {
        s.push_str("<h3>Details</h3>\n<table cellpadding=\"2\">\n");
        for (k, v) in &c.details {
            let _ = writeln!(
                s,
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                h(k),
                h(v)
            );
        }
        s.push_str("</table>\n");
    }
    if !c.reports.is_empty() {
        s.push_str("<p>");
        let lines: Vec<String> = c.reports.iter().map(|l| h(l.trim()).into_owned()).collect();
        s.push_str(&lines.join("<br>\n"));
        s.push_str("</p>\n");
    }
    s.push_str("<p style=\"color:#777\">-- <br>\nrosterdrop: sent automatically after every batch.</p>\n</body></html>\n");
    s
}
