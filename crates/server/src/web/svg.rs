//! Charts drawn on the server as SVG text: pure functions of the figures
//! they show, so unit tests can read what they draw. Colours come from the
//! stylesheet (classes), and every chart has a text label, so nothing is
//! said by colour alone.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};

/// One bucket of a status bar: what most of its runs were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Up,
    Degraded,
    Down,
    /// No runs in the bucket.
    Empty,
}

impl Bucket {
    fn class(self) -> &'static str {
        match self {
            Bucket::Up => "u",
            Bucket::Degraded => "g",
            Bucket::Down => "d",
            Bucket::Empty => "e",
        }
    }

    /// A bucket from its counts of up, degraded and down runs: down when
    /// any run was down, else degraded when any was, else up.
    pub fn from_counts(up: u64, degraded: u64, down: u64) -> Bucket {
        if down > 0 {
            Bucket::Down
        } else if degraded > 0 {
            Bucket::Degraded
        } else if up > 0 {
            Bucket::Up
        } else {
            Bucket::Empty
        }
    }
}

/// A status bar, oldest bucket on the left: one unit of width per bucket,
/// stretched by the stylesheet. Runs of equal buckets are drawn as one
/// stroke and each state as one path, so a bar of 90 buckets is a few dozen
/// bytes when little changes (the list page draws a thousand).
pub fn status_bar(buckets: &[Bucket]) -> String {
    let mut out = String::with_capacity(160);
    let (mut up, mut degraded, mut down) = (0, 0, 0);
    for b in buckets {
        match b {
            Bucket::Up => up += 1,
            Bucket::Degraded => degraded += 1,
            Bucket::Down => down += 1,
            Bucket::Empty => {}
        }
    }
    let label = if up + degraded + down == 0 {
        "no runs".to_string()
    } else {
        let mut parts = vec![format!("{up} up")];
        if degraded > 0 {
            parts.push(format!("{degraded} degraded"));
        }
        if down > 0 {
            parts.push(format!("{down} down"));
        }
        parts.join(", ")
    };
    let _ = write!(
        out,
        "<svg class=bar viewBox=\"0 0 {} 1\" preserveAspectRatio=none role=img aria-label=\"{label}\">",
        buckets.len().max(1)
    );
    for state in [Bucket::Up, Bucket::Degraded, Bucket::Down, Bucket::Empty] {
        let mut d = String::new();
        let mut i = 0;
        while i < buckets.len() {
            if buckets[i] != state {
                i += 1;
                continue;
            }
            let start = i;
            while i < buckets.len() && buckets[i] == state {
                i += 1;
            }
            let _ = write!(d, "M{start} .5h{}", i - start);
        }
        if !d.is_empty() {
            let _ = write!(out, "<path class={} d=\"{d}\"/>", state.class());
        }
    }
    out.push_str("</svg>");
    out
}

/// One point of a latency series: percentiles and the mean of each phase
/// over a time bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPoint {
    pub at: DateTime<Utc>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Mean ms per phase, in `pulse_core::run::Phases::by_name` order.
    pub phases: [(&'static str, f64); 5],
}

const W: f64 = 720.0;
const H: f64 = 220.0;
/// The plot's left edge: the y labels sit inside it, above their grid
/// lines, so larger text on a phone is never clipped.
const LEFT: f64 = 8.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 8.0;

/// A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The time a chart spans and the width of its buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket_secs: i64,
}

/// Latency over time: the phases' means stacked as areas, with the p50,
/// p95 and p99 lines over them, a y axis in ms and the window's start and
/// end on the x axis. Points (one per bucket with runs, in time order) are
/// placed by time: a bucket without runs is a gap, and a lone bucket is
/// drawn across its width.
pub fn latency_chart(points: &[LatencyPoint], window: ChartWindow) -> String {
    let mut out = String::new();
    if points.is_empty() {
        let _ = write!(
            out,
            "<svg class=chart viewBox=\"0 0 {W} 40\" role=img aria-label=\"latency over time: no data\"><text x=\"{}\" y=\"24\" text-anchor=middle>no data</text></svg>",
            W / 2.0
        );
        return out;
    }
    let _ = write!(
        out,
        "<svg class=chart viewBox=\"0 0 {W} {H}\" role=img aria-label=\"latency over time: p50, p95 and p99 lines over the phases stacked\">"
    );
    let top = points
        .iter()
        .map(|p| {
            let stacked: f64 = p.phases.iter().map(|(_, v)| v).sum();
            p.p99_ms.max(p.p95_ms).max(p.p50_ms).max(stacked)
        })
        .fold(0.0, f64::max);
    let max = nice_max(top);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let span = (window.to - window.from).num_seconds().max(1) as f64;
    let x = |t: DateTime<Utc>, offset: i64| {
        let s = (t - window.from).num_seconds() + offset;
        LEFT + plot_w * (s as f64 / span).clamp(0.0, 1.0)
    };
    let y = |v: f64| TOP + plot_h - plot_h * (v / max).clamp(0.0, 1.0);
    // Grid and y labels: 0, half, max.
    for frac in [0.0, 0.5, 1.0] {
        let v = max * frac;
        let _ = write!(
            out,
            "<path class=grid d=\"M{LEFT} {:.1}H{}\"/><text class=ax x=\"{}\" y=\"{:.1}\">{} ms</text>",
            y(v),
            W - 8.0,
            LEFT + 2.0,
            (y(v) - 3.0).max(TOP + 20.0),
            fmt_num(v)
        );
    }
    // Runs of adjacent buckets, each drawn as one piece; in each, every
    // point's x (its bucket's middle, or both edges of a lone bucket).
    let bucket = window.bucket_secs.max(1);
    let mut pieces: Vec<Vec<(f64, &LatencyPoint)>> = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i < points.len() && (points[i].at - points[i - 1].at).num_seconds() <= bucket {
            continue;
        }
        let run = &points[start..i];
        pieces.push(if run.len() == 1 {
            vec![(x(run[0].at, 0), &run[0]), (x(run[0].at, bucket), &run[0])]
        } else {
            run.iter().map(|p| (x(p.at, bucket / 2), p)).collect()
        });
        start = i;
    }
    let path = |values: &dyn Fn(&LatencyPoint) -> f64| {
        let mut d = String::new();
        for piece in &pieces {
            for (i, (px, p)) in piece.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{px:.1} {:.1}",
                    if i == 0 { "M" } else { "L" },
                    y(values(p))
                );
            }
        }
        d
    };
    // Stacked phases, bottom up.
    for k in 0..5 {
        let name = points[0].phases[k].0;
        if points.iter().all(|p| p.phases[k].1 <= 0.0) {
            continue;
        }
        let below = |p: &LatencyPoint| p.phases[..k].iter().map(|(_, v)| v).sum::<f64>();
        let mut d = String::new();
        for piece in &pieces {
            for (i, (px, p)) in piece.iter().enumerate() {
                let v = below(p) + p.phases[k].1;
                let _ = write!(d, "{}{px:.1} {:.1}", if i == 0 { "M" } else { "L" }, y(v));
            }
            for (px, p) in piece.iter().rev() {
                let _ = write!(d, "L{px:.1} {:.1}", y(below(p)));
            }
            d.push('Z');
        }
        let _ = write!(
            out,
            "<path class=\"ph ph-{name}\" d=\"{d}\"><title>{name}</title></path>"
        );
    }
    for (name, get) in [
        (
            "p50",
            (|p: &LatencyPoint| p.p50_ms) as fn(&LatencyPoint) -> f64,
        ),
        ("p95", |p| p.p95_ms),
        ("p99", |p| p.p99_ms),
    ] {
        let _ = write!(
            out,
            "<path class=\"ln ln-{name}\" d=\"{}\"><title>{name}</title></path>",
            path(&get)
        );
    }
    let fmt = |t: &DateTime<Utc>| t.format("%b %-d %H:%M").to_string();
    let _ = write!(
        out,
        "<text class=ax x=\"{LEFT}\" y=\"{}\">{}</text><text class=ax x=\"{}\" y=\"{}\" text-anchor=end>{}</text></svg>",
        H - 6.0,
        fmt(&window.from),
        W - 8.0,
        H - 6.0,
        fmt(&window.to)
    );
    out
}

fn fmt_num(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One day of the public status page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayUptime {
    pub day: NaiveDate,
    /// Share of up runs, 0 to 1; `None` for a day without runs.
    pub uptime: Option<f64>,
}

/// The status page's bars: one per day, oldest first, each with its date
/// and uptime as a tooltip; a day below 99 % is drawn as down, below
/// 99.9 % as degraded.
pub fn daily_bars(days: &[DayUptime]) -> String {
    let mut out = String::new();
    let known: Vec<f64> = days.iter().filter_map(|d| d.uptime).collect();
    let label = if known.is_empty() {
        format!("{} days, no data", days.len())
    } else {
        let mean = known.iter().sum::<f64>() / known.len() as f64;
        format!("{} days, {} uptime", days.len(), percent(mean))
    };
    let _ = write!(
        out,
        "<svg class=days viewBox=\"0 0 {} 10\" preserveAspectRatio=none role=img aria-label=\"{label}\">",
        days.len().max(1) * 4
    );
    for (i, d) in days.iter().enumerate() {
        let (class, text) = match d.uptime {
            None => ("e", "no data".to_string()),
            Some(u) if u < 0.99 => ("d", percent(u)),
            Some(u) if u < 0.999 => ("g", percent(u)),
            Some(u) => ("u", percent(u)),
        };
        let _ = write!(
            out,
            "<rect class={class} x=\"{}\" width=\"3\" height=\"10\"><title>{}: {text}</title></rect>",
            i * 4,
            d.day.format("%Y-%m-%d")
        );
    }
    out.push_str("</svg>");
    out
}

/// An incident on a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: DateTime<Utc>,
    /// `None` while it is open.
    pub end: Option<DateTime<Utc>>,
    pub label: String,
}

/// Incidents on a timeline from `from` to `to`: one bar per incident,
/// open ones reaching the right edge, each with its label as a tooltip.
pub fn timeline(spans: &[Span], from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=timeline viewBox=\"0 0 {W} 64\" role=img aria-label=\"{} incident{} from {} to {}\">",
        spans.len(),
        if spans.len() == 1 { "" } else { "s" },
        from.format("%b %-d"),
        to.format("%b %-d")
    );
    let total = (to - from).num_seconds().max(1) as f64;
    let x = |t: DateTime<Utc>| {
        let s = (t - from).num_seconds() as f64;
        LEFT + (W - LEFT - 8.0) * (s / total).clamp(0.0, 1.0)
    };
    let _ = write!(out, "<path class=grid d=\"M{LEFT} 18H{}\"/>", W - 8.0);
    for s in spans {
        let x0 = x(s.start);
        let x1 = x(s.end.unwrap_or(to)).max(x0 + 2.0);
        let class = if s.end.is_none() { "d open" } else { "d" };
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"8\" width=\"{:.1}\" height=\"20\"><title>{}</title></rect>",
            x1 - x0,
            escape(&s.label)
        );
    }
    let _ = write!(
        out,
        "<text class=ax x=\"{LEFT}\" y=\"56\">{}</text><text class=ax x=\"{}\" y=\"56\" text-anchor=end>{}</text></svg>",
        from.format("%b %-d"),
        W - 8.0,
        to.format("%b %-d")
    );
    out
}

/// A share (0 to 1) as a percentage with enough digits to tell 99.9 from
/// 99.99.
pub fn percent(v: f64) -> String {
    let p = v * 100.0;
    if p >= 100.0 {
        "100%".into()
    } else if p >= 99.0 {
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    } else {
        format!("{p:.1}%")
    }
}

/// Text for SVG and HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_status_bar_draws_runs_of_equal_buckets_as_one_stroke_per_state() {
        let mut buckets = vec![Bucket::Up; 90];
        buckets[10] = Bucket::Down;
        buckets[11] = Bucket::Down;
        buckets[50] = Bucket::Degraded;
        buckets[0] = Bucket::Empty;
        let svg = status_bar(&buckets);
        assert!(
            svg.starts_with("<svg class=bar viewBox=\"0 0 90 1\""),
            "{svg}"
        );
        assert!(
            svg.contains("aria-label=\"86 up, 1 degraded, 2 down\""),
            "{svg}"
        );
        assert!(
            svg.contains("<path class=u d=\"M1 .5h9M12 .5h38M51 .5h39\"/>"),
            "{svg}"
        );
        assert!(svg.contains("<path class=d d=\"M10 .5h2\"/>"), "{svg}");
        assert!(svg.contains("<path class=g d=\"M50 .5h1\"/>"), "{svg}");
        assert!(svg.contains("<path class=e d=\"M0 .5h1\"/>"), "{svg}");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn a_bar_without_runs_says_so_and_a_steady_bar_is_small() {
        let svg = status_bar(&[Bucket::Empty; 90]);
        assert!(svg.contains("aria-label=\"no runs\""), "{svg}");
        assert!(svg.contains("<path class=e d=\"M0 .5h90\"/>"), "{svg}");
        assert!(status_bar(&[Bucket::Up; 90]).len() < 150);
    }

    #[test]
    fn buckets_are_as_bad_as_their_worst_run() {
        assert_eq!(Bucket::from_counts(10, 1, 1), Bucket::Down);
        assert_eq!(Bucket::from_counts(10, 1, 0), Bucket::Degraded);
        assert_eq!(Bucket::from_counts(10, 0, 0), Bucket::Up);
        assert_eq!(Bucket::from_counts(0, 0, 0), Bucket::Empty);
    }

    fn point(min: u32, p50: f64, p95: f64, p99: f64) -> LatencyPoint {
        LatencyPoint {
            at: Utc.with_ymd_and_hms(2026, 11, 28, 12, min, 0).unwrap(),
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            phases: [
                ("dns", 5.0),
                ("connect", 10.0),
                ("tls", 0.0),
                ("ttfb", 30.0),
                ("download", 5.0),
            ],
        }
    }

    /// 12:00 to 13:00 in 5-minute buckets.
    fn hour() -> ChartWindow {
        ChartWindow {
            from: Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2026, 11, 28, 13, 0, 0).unwrap(),
            bucket_secs: 300,
        }
    }

    /// The x of `secs` into [`hour`].
    fn x_at(secs: f64) -> f64 {
        LEFT + (W - LEFT - 8.0) * secs / 3600.0
    }

    /// The `d` of the path with `class`.
    fn path_of<'a>(svg: &'a str, class: &str) -> &'a str {
        let at = svg.find(&format!("class=\"{class}\" d=\"")).unwrap() + class.len() + 12;
        &svg[at..at + svg[at..].find('"').unwrap()]
    }

    #[test]
    fn the_latency_chart_draws_each_percentile_and_the_phases_on_a_round_axis() {
        let svg = latency_chart(
            &[point(0, 50.0, 120.0, 180.0), point(5, 60.0, 90.0, 140.0)],
            hour(),
        );
        for name in ["p50", "p95", "p99"] {
            assert!(
                svg.contains(&format!("class=\"ln ln-{name}\"")),
                "{name}: {svg}"
            );
        }
        for name in ["dns", "connect", "ttfb", "download"] {
            assert!(
                svg.contains(&format!("class=\"ph ph-{name}\"")),
                "{name}: {svg}"
            );
        }
        // A phase that is always 0 is not drawn.
        assert!(!svg.contains("ph-tls"), "{svg}");
        // 180 ms at most: the axis goes to 200.
        assert!(svg.contains(">200 ms</text>"), "{svg}");
        assert!(svg.contains(">100 ms</text>"), "{svg}");
        // The x axis names the window's ends.
        assert!(svg.contains(">Nov 28 12:00</text>"), "{svg}");
        assert!(svg.contains(">Nov 28 13:00</text>"), "{svg}");
        // The p99 line's first point: 180 of 200 ms, near the top, in the
        // middle of the first 5 minutes.
        let plot_h = H - TOP - BOTTOM;
        let y = TOP + plot_h - plot_h * 0.9;
        assert!(
            path_of(&svg, "ln ln-p99").starts_with(&format!("M{:.1} {y:.1}L", x_at(150.0))),
            "{svg}"
        );
    }

    #[test]
    fn points_are_placed_by_time_and_a_bucket_without_runs_is_a_gap() {
        // Runs at 12:00, 12:05 and 12:45: two pieces, the second a lone
        // bucket drawn across its 5 minutes.
        let pts = [
            point(0, 50.0, 60.0, 70.0),
            point(5, 50.0, 60.0, 70.0),
            point(45, 50.0, 60.0, 70.0),
        ];
        let svg = latency_chart(&pts, hour());
        let p50 = path_of(&svg, "ln ln-p50");
        assert_eq!(p50.matches('M').count(), 2, "{p50}");
        let xs: Vec<f64> = p50
            .split(['M', 'L'])
            .filter(|s| !s.is_empty())
            .map(|s| s.split(' ').next().unwrap().parse().unwrap())
            .collect();
        let want = [150.0, 450.0, 2700.0, 3000.0].map(x_at);
        assert_eq!(xs.len(), want.len(), "{p50}");
        for (got, want) in xs.iter().zip(want) {
            assert!((got - want).abs() < 0.06, "{got} vs {want}: {p50}");
        }
        // Each phase's area is closed once per piece.
        assert_eq!(path_of(&svg, "ph ph-dns").matches('Z').count(), 2);
    }

    #[test]
    fn a_chart_of_one_bucket_still_names_two_different_times() {
        let svg = latency_chart(&[point(20, 50.0, 60.0, 70.0)], hour());
        assert!(svg.contains(">Nov 28 12:00</text>"), "{svg}");
        assert!(svg.contains(">Nov 28 13:00</text>"), "{svg}");
        assert_eq!(svg.matches(">Nov 28 12:20</text>").count(), 0, "{svg}");
        let p50 = path_of(&svg, "ln ln-p50");
        assert!(p50.starts_with(&format!("M{:.1} ", x_at(1200.0))), "{p50}");
    }

    #[test]
    fn an_empty_latency_chart_says_no_data() {
        let svg = latency_chart(&[], hour());
        assert!(svg.contains(">no data</text>"), "{svg}");
        assert!(!svg.contains("ln-p95"));
    }

    #[test]
    fn daily_bars_mark_each_day_with_its_date_and_uptime() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let svg = daily_bars(&[
            DayUptime {
                day: day(1),
                uptime: Some(1.0),
            },
            DayUptime {
                day: day(2),
                uptime: Some(0.995),
            },
            DayUptime {
                day: day(3),
                uptime: Some(0.5),
            },
            DayUptime {
                day: day(4),
                uptime: None,
            },
        ]);
        assert!(
            svg.contains(
                "<rect class=u x=\"0\" width=\"3\" height=\"10\"><title>2026-11-01: 100%</title>"
            ),
            "{svg}"
        );
        assert!(svg.contains("<title>2026-11-02: 99.50%</title>"), "{svg}");
        assert!(svg.contains("<rect class=d x=\"8\""), "{svg}");
        assert!(svg.contains("<title>2026-11-03: 50.0%</title>"), "{svg}");
        assert!(svg.contains("<rect class=e x=\"12\""), "{svg}");
        assert!(svg.contains("<title>2026-11-04: no data</title>"), "{svg}");
        assert!(svg.contains("aria-label=\"4 days, 83.2% uptime\""), "{svg}");
    }

    #[test]
    fn the_timeline_places_incidents_in_time_and_open_ones_reach_the_end() {
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
        let mid = Utc.with_ymd_and_hms(2026, 11, 6, 0, 0, 0).unwrap();
        let svg = timeline(
            &[
                Span {
                    start: from,
                    end: Some(mid),
                    label: "down: <500>".into(),
                },
                Span {
                    start: mid,
                    end: None,
                    label: "open".into(),
                },
            ],
            from,
            to,
        );
        let half = LEFT + (W - LEFT - 8.0) / 2.0;
        assert!(
            svg.contains(&format!(
                "<rect class=\"d\" x=\"{LEFT:.1}\" y=\"8\" width=\"{:.1}\"",
                half - LEFT
            )),
            "{svg}"
        );
        assert!(
            svg.contains(&format!("<rect class=\"d open\" x=\"{half:.1}\"")),
            "{svg}"
        );
        assert!(svg.contains("<title>down: &lt;500&gt;</title>"), "{svg}");
        assert!(
            svg.contains("aria-label=\"2 incidents from Nov 1 to Nov 11\""),
            "{svg}"
        );
    }

    #[test]
    fn percentages_keep_the_digits_that_matter() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.99999), "99.99%");
        assert_eq!(percent(0.9995), "99.95%");
        assert_eq!(percent(0.5), "50.0%");
    }
}
