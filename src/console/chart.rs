//! A source's batches over time as an SVG drawn on the server: the roster's size (a line)
//! and what each applied batch added, changed and removed (bars). No script; a table beside
//! it carries the same numbers for screen readers.

use maud::{html, Markup};

/// One applied batch's point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub batch: u64,
    pub size: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// The chart, or a sentence when there is nothing to draw.
pub fn svg(source: &str, points: &[Point]) -> Markup {
    if points.is_empty() {
        return html! { p { "No applied batch yet: nothing to chart." } };
    }
    let n = points.len() as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max_size = points.iter().map(|p| p.size).max().unwrap_or(0).max(1) as f64;
    let max_moved = points
        .iter()
        .map(|p| p.added + p.changed + p.removed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.6).max(1.0);
    let x_mid = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y_size = |v: u64| TOP + plot_h - plot_h * (v as f64 / max_size);
    let h_moved = |v: u64| plot_h * (v as f64 / max_moved);
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{},{}", fmt(x_mid(i)), fmt(y_size(p.size))))
        .collect();
    let label = format!(
        "Roster size and changes per batch of {source}: {} applied batches, the roster now \
         holds {} records",
        points.len(),
        points.last().map_or(0, |p| p.size)
    );
    let every = (points.len() / 12).max(1);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
            title { (label) }
            line x1=(LEFT) y1=(TOP + plot_h) x2=(W - RIGHT) y2=(TOP + plot_h) stroke="#767676" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_h) stroke="#767676" {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" font-size="11" { (max_size as u64) }
            text x=(LEFT - 6.0) y=(TOP + plot_h) text-anchor="end" font-size="11" { "0" }
            @for (i, p) in points.iter().enumerate() {
                @let x = x_mid(i) - bar / 2.0;
                @let base = TOP + plot_h;
                @let (ha, hc, hr) = (h_moved(p.added), h_moved(p.changed), h_moved(p.removed));
                g {
                    title { "batch " (p.batch) ": " (p.size) " records, " (p.added) " added, " (p.changed) " changed, " (p.removed) " removed" }
                    rect x=(fmt(x)) y=(fmt(base - ha)) width=(fmt(bar)) height=(fmt(ha)) fill="#1d6b2a" {}
                    rect x=(fmt(x)) y=(fmt(base - ha - hc)) width=(fmt(bar)) height=(fmt(hc)) fill="#0b4f8a" {}
                    rect x=(fmt(x)) y=(fmt(base - ha - hc - hr)) width=(fmt(bar)) height=(fmt(hr)) fill="#a00000" {}
                }
                @if i % every == 0 {
                    text x=(fmt(x_mid(i))) y=(H - BOTTOM + 16.0) text-anchor="middle" font-size="11" { (p.batch) }
                }
            }
            polyline points=(line.join(" ")) fill="none" stroke="#1a1a1a" stroke-width="2" {}
            @for (i, p) in points.iter().enumerate() {
                circle cx=(fmt(x_mid(i))) cy=(fmt(y_size(p.size))) r="3" fill="#1a1a1a" {}
            }
            text x=(LEFT + plot_w / 2.0) y=(H - 4.0) text-anchor="middle" font-size="11" { "batch" }
        }
        p.legend {
            span.key.k-size {} " roster size (line, left scale) "
            span.key.k-add {} " added "
            span.key.k-change {} " changed "
            span.key.k-remove {} " removed (bars, scaled to the largest batch: " (max_moved as u64) ")"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_bar_group_and_a_point_per_batch_and_escapes_the_name() {
        let pts = vec![
            Point {
                batch: 1,
                size: 100,
                added: 100,
                changed: 0,
                removed: 0,
            },
            Point {
                batch: 4,
                size: 90,
                added: 0,
                changed: 5,
                removed: 10,
            },
        ];
        let s = svg("<b>x</b>", &pts).into_string();
        assert_eq!(s.matches("<circle").count(), 2);
        assert_eq!(s.matches("<rect").count(), 6);
        assert!(s.contains("batch 4: 90 records, 0 added, 5 changed, 10 removed"));
        assert!(!s.contains("<b>x</b>") && s.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(svg("x", &[]).into_string().contains("nothing to chart"));
    }
}
