//! Small SVG charts made by the gateway: stacked bars per day or hour (with an optional target
//! line) and level lines with markers. Each is an `<svg role="img">` with a title; the same
//! figures are in a table beside it for screen readers and print. Pure.

use maud::{html, Markup};

/// One bar: stacked segments (value, CSS class), and its axis label.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Axis label (shown for some bars).
    pub label: String,
    /// Segments bottom up.
    pub segments: Vec<(f64, &'static str)>,
    /// Tooltip.
    pub title: String,
}

const W: f64 = 640.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A nice upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= max {
            return m * p;
        }
    }
    10.0 * p
}

/// The non-empty segments with the value each starts at.
fn stacked(lo: f64, segments: &[(f64, &'static str)]) -> Vec<(f64, f64, &'static str)> {
    let mut base = lo;
    let mut out = Vec::new();
    for (v, class) in segments {
        if *v > 0.0 {
            out.push((base, *v, *class));
        }
        base += v;
    }
    out
}

/// Stacked bars standing on `lo` (the axis' bottom; segment values are heights above it) up
/// to `hi` or at least the highest bar, with an optional
/// horizontal `target` line; `y_label` formats the axis values.
pub fn bars(
    title: &str,
    bars: &[Bar],
    lo: f64,
    hi: Option<f64>,
    target: Option<(f64, String)>,
    y_label: impl Fn(f64) -> String,
) -> Markup {
    let max = bars
        .iter()
        .map(|b| lo + b.segments.iter().map(|s| s.0).sum::<f64>())
        .fold(lo, f64::max);
    let hi = hi.unwrap_or_else(|| lo + nice(max - lo));
    let span = (hi - lo).max(f64::EPSILON);
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - BOTTOM - TOP;
    let y = |v: f64| TOP + plot_h * (1.0 - ((v - lo) / span).clamp(0.0, 1.0));
    let n = bars.len().max(1) as f64;
    let step = plot_w / n;
    let bw = (step * 0.75).clamp(1.0, 28.0);
    let label_every = (bars.len() / 12).max(1);
    html! {
        svg class="chart" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for i in 0..=2 {
                @let v = lo + span * f64::from(i) / 2.0;
                line class="grid" x1=(LEFT) x2=(W - 4.0) y1=(fmt(y(v))) y2=(fmt(y(v))) {}
                text class="axis" x=(LEFT - 4.0) y=(fmt(y(v) + 4.0)) text-anchor="end" { (y_label(v)) }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let x = LEFT + step * i as f64 + (step - bw) / 2.0;
                g {
                    title { (b.title) }
                    @for (bottom, v, class) in stacked(lo, &b.segments) {
                        @let top = bottom + v;
                        rect class=(class) x=(fmt(x)) width=(fmt(bw)) y=(fmt(y(top)))
                            height=(fmt((y(bottom) - y(top)).max(0.5))) {}
                    }
                }
                @if i % label_every == 0 {
                    text class="axis" x=(fmt(x + bw / 2.0)) y=(H - 6.0) text-anchor="middle" { (b.label) }
                }
            }
            @if let Some((t, label)) = target {
                line class="target" x1=(LEFT) x2=(W - 4.0) y1=(fmt(y(t))) y2=(fmt(y(t))) {}
                text class="axis target-label" x=(W - 6.0) y=(fmt(y(t) - 3.0)) text-anchor="end" { (label) }
            }
        }
    }
}

/// One line of a level chart: its name, CSS colour and points (x index, 0–100).
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend name.
    pub name: String,
    /// Stroke colour.
    pub colour: &'static str,
    /// (x index, value 0–100).
    pub points: Vec<(usize, f64)>,
}

/// Lines of levels 0–100 % over `labels.len()` x positions, with vertical markers at
/// (x index, tooltip) — e.g. a cartridge replaced.
pub fn levels(
    title: &str,
    labels: &[String],
    lines: &[Line],
    markers: &[(usize, String)],
) -> Markup {
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - BOTTOM - TOP;
    let n = labels.len().max(2) as f64 - 1.0;
    let x = |i: usize| LEFT + plot_w * i as f64 / n;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / 100.0).clamp(0.0, 1.0));
    let label_every = (labels.len() / 10).max(1);
    html! {
        svg class="chart" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for v in [0.0, 50.0, 100.0] {
                line class="grid" x1=(LEFT) x2=(W - 4.0) y1=(fmt(y(v))) y2=(fmt(y(v))) {}
                text class="axis" x=(LEFT - 4.0) y=(fmt(y(v) + 4.0)) text-anchor="end" { (v) " %" }
            }
            @for (i, label) in labels.iter().enumerate() {
                @if i % label_every == 0 {
                    text class="axis" x=(fmt(x(i))) y=(H - 6.0) text-anchor="middle" { (label) }
                }
            }
            @for (i, tip) in markers {
                g class="marker" {
                    title { (tip) }
                    line x1=(fmt(x(*i))) x2=(fmt(x(*i))) y1=(TOP) y2=(H - BOTTOM) {}
                    circle cx=(fmt(x(*i))) cy=(TOP + 3.0) r="3" {}
                }
            }
            @for l in lines {
                @let d = l.points.iter().enumerate().map(|(k, (i, v))| {
                    format!("{}{},{}", if k == 0 { "M" } else { "L" }, fmt(x(*i)), fmt(y(*v)))
                }).collect::<Vec<_>>().join(" ");
                path d=(d) fill="none" stroke=(l.colour) stroke-width="2" {
                    title { (l.name) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_a_nice_axis_and_mark_the_target() {
        let b = vec![
            Bar {
                label: "1".into(),
                segments: vec![(30.0, "mono"), (10.0, "colour")],
                title: "a".into(),
            },
            Bar {
                label: "2".into(),
                segments: vec![(0.0, "mono")],
                title: "b".into(),
            },
        ];
        let svg = bars("Seiten", &b, 0.0, None, Some((45.0, "Ziel".into())), |v| {
            format!("{v}")
        })
        .into_string();
        // 40 pages → an axis up to 50; the stacked bar is two rects, the empty day none.
        assert!(svg.contains(">50<"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("class=\"target\""));
        assert!(svg.contains("<title>Seiten</title>"));
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(101.0), 200.0);
    }

    #[test]
    fn level_lines_and_markers() {
        let labels: Vec<String> = (1..=5).map(|d| d.to_string()).collect();
        let lines = [Line {
            name: "Cyan".into(),
            colour: "#0093d3",
            points: vec![(0, 50.0), (4, 10.0)],
        }];
        let svg = levels("Füllstände", &labels, &lines, &[(2, "ersetzt".into())]).into_string();
        assert!(svg.contains("M44.0,"), "{svg}");
        assert!(svg.contains("<title>ersetzt</title>"));
    }
}
