//! Research: policies against the static frontier on every evaluation preset (metrics only).
//!
//! For each preset (5 s start-up, and 0.1 s for the bursty ones) it runs static farms of
//! 1, 2, … workers until the QoS reaches 100 % — the static line, what an operator who knew the
//! workload in advance could provision — and each policy, all on the same episodes (seeds
//! 1000…). A policy earns its keep on a workload when its point lies above and left of the line.
//!
//! `cargo run --release -p agent --example frontier -- [EPISODES] [OUT_DIR] [[LABEL=]SPEC[@PERIOD_S]]…`
//! writes `OUT_DIR/frontier.md` (a table) and `OUT_DIR/frontier.svg` (one panel per workload).
//! Policies run every 1 s unless `@PERIOD_S` says otherwise.

#[path = "common/suite.rs"]
mod common;

use agent::spec::PolicySpec;
use std::fmt::Write as _;

struct Panel {
    name: String,
    line: Vec<(f64, f64)>,
    /// (label, QoS, mean workers, static equivalent)
    points: Vec<(String, f64, f64, f64)>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let episodes: u64 = args.first().map_or(20, |s| s.parse().expect("EPISODES"));
    let out = std::path::PathBuf::from(args.get(1).map_or("target/frontier", String::as_str));
    let specs: Vec<String> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![
            "staffing".into(),
            "queue-proportional@8".into(),
            "reactive-average@8".into(),
        ]
    };
    let parsed: Vec<(String, PolicySpec, f64)> = specs
        .iter()
        .map(|s| {
            // `LABEL=SPEC@PERIOD_S`: the label shown instead of the spec.
            let (label, s) = match s.split_once('=') {
                Some((label, spec)) => (label.to_string(), spec),
                None => (s.clone(), s.as_str()),
            };
            let (spec, period) = match s.split_once('@') {
                Some((spec, p)) => (spec, p.parse().expect("PERIOD_S")),
                None => (s, 1.0),
            };
            (label, spec.parse().expect("policy"), period)
        })
        .collect();
    std::fs::create_dir_all(&out).expect("OUT_DIR");
    let mut md = String::from(
        "| workload | start-up | policy | QoS % | mean workers | static workers at that QoS | saving % |\n|---|---|---|---|---|---|---|\n",
    );
    let mut panels = Vec::new();
    for (name, w, startup) in common::presets() {
        let line = common::static_line(&w, startup, episodes);
        let mut points = Vec::new();
        for (label, spec, period) in &parsed {
            let (q, m) = common::run_at(spec, &w, startup, episodes, *period);
            let eq = common::static_equivalent(&line, q);
            let _ = writeln!(
                md,
                "| {} | {startup} s | {label} | {:.2} | {:.2} | {:.2} | {:+.1} |",
                name.split(" (").next().unwrap_or(&name),
                q * 100.0,
                m,
                eq,
                (1.0 - m / eq) * 100.0
            );
            eprintln!("{name}: {label} {:.2} % at {m:.2} (static {eq:.2})", q * 100.0);
            points.push((label.clone(), q, m, eq));
        }
        panels.push(Panel { name, line, points });
    }
    std::fs::write(out.join("frontier.md"), md).expect("write frontier.md");
    let labels: Vec<String> = parsed.iter().map(|p| p.0.clone()).collect();
    std::fs::write(out.join("frontier.svg"), svg(&panels, &labels)).expect("write frontier.svg");
    println!("wrote {0}/frontier.md, {0}/frontier.svg", out.display());
}

const COLORS: &[&str] = &["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// Small multiples: per workload, QoS (90–100 %) against mean workers, the static line in
/// grey and one dot per policy.
fn svg(panels: &[Panel], labels: &[String]) -> String {
    let (cols, pw, ph, gap) = (4usize, 260.0, 190.0, 30.0);
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (
        cols as f64 * (pw + gap) + gap,
        rows as f64 * (ph + gap + 20.0) + 70.0,
    );
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{gap}" y="20" font-size="13">QoS % (90–100) against mean workers; grey: static farms of 1, 2, … workers; up and left of the line is better; policies below 90 % are left out (see the table)</text>"#
    );
    for (i, label) in labels.iter().enumerate() {
        let x = gap + i as f64 * 190.0;
        let _ = write!(
            s,
            r#"<circle cx="{}" cy="38" r="4" fill="{}"/><text x="{}" y="42">{}</text>"#,
            x + 4.0,
            COLORS[i % COLORS.len()],
            x + 12.0,
            escape(label)
        );
    }
    for (k, p) in panels.iter().enumerate() {
        let (x0, y0) = (
            gap + (k % cols) as f64 * (pw + gap),
            60.0 + (k / cols) as f64 * (ph + gap + 20.0),
        );
        let (left, right, top, bottom) = (x0 + 30.0, x0 + pw, y0 + 20.0, y0 + 20.0 + ph - 20.0);
        // The x range: the line from where it reaches 90 % QoS to three workers past where it
        // reaches 99.5 %, and every dot above 90 % (the table has those below).
        let knee = p
            .line
            .iter()
            .position(|(q, _)| *q >= 0.995)
            .unwrap_or(p.line.len());
        let visible: Vec<f64> = p.line[..(knee + 4).min(p.line.len())]
            .iter()
            .filter(|(q, _)| *q >= 0.9)
            .map(|(_, m)| *m)
            .chain(p.points.iter().filter(|pt| pt.1 >= 0.9).map(|pt| pt.2))
            .collect();
        let m_min = visible.iter().copied().fold(f64::INFINITY, f64::min).floor() - 0.5;
        let m_max = visible.iter().copied().fold(0.0, f64::max).ceil() + 0.5;
        let x = |m: f64| left + (right - left) * (m - m_min) / (m_max - m_min);
        let y = |q: f64| bottom - (bottom - top) * ((q * 100.0 - 90.0) / 10.0).clamp(-0.05, 1.0);
        let _ = write!(
            s,
            r#"<text x="{x0}" y="{}">{}</text><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/><text x="{}" y="{}" text-anchor="end">100</text><text x="{}" y="{}" text-anchor="end">90</text><text x="{left}" y="{}">{m_min:.1}</text><text x="{right}" y="{}" text-anchor="end">{m_max:.1} workers</text>"#,
            y0 + 12.0,
            escape(&p.name),
            left - 3.0,
            top + 4.0,
            left - 3.0,
            bottom,
            bottom + 13.0,
            bottom + 13.0
        );
        let d: String = p
            .line
            .iter()
            .filter(|(_, m)| *m >= m_min && *m <= m_max)
            .enumerate()
            .map(|(i, (q, m))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, x(*m), y(*q)))
            .collect();
        let _ = write!(
            s,
            r##"<path d="{d}" fill="none" stroke="#999" stroke-width="1.5"/>"##
        );
        for (q, m) in p.line.iter().filter(|(_, m)| *m >= m_min && *m <= m_max) {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#999"/>"##,
                x(*m),
                y(*q)
            );
        }
        for (i, (_, q, m, _)) in p.points.iter().enumerate() {
            if *q < 0.9 || *m > m_max {
                continue;
            }
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}" fill-opacity="0.85"/>"#,
                x(*m),
                y(*q),
                COLORS[i % COLORS.len()]
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
