//! Small dependency-free SVG charts for evaluation reports: stacked time-series panels with a
//! shared time axis, and a scatter of QoS against worker-seconds.

use crate::eval::{PolicySummary, StepRecord};

const COLORS: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A panel's title and how to read its value from a step.
type Panel = (&'static str, fn(&StepRecord) -> f64);

/// Four panels (workers, queue length, arrival rate, window QoS) over time, one line per policy.
pub fn timeseries_svg(series: &[(String, Vec<StepRecord>)]) -> String {
    let (w, panel_h, pad) = (900.0, 170.0, 50.0);
    let panels: [Panel; 4] = [
        ("workers", |s| f64::from(s.workers)),
        ("queue length", |s| s.queue_length as f64),
        ("arrival rate (tasks/s)", |s| s.arrival_rate),
        ("QoS in window", |s| s.window_qos),
    ];
    let t_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|r| r.time_s))
        .fold(1.0, f64::max);
    let h = pad + panels.len() as f64 * (panel_h + 20.0) + 40.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    );
    for (p, (label, value)) in panels.iter().enumerate() {
        let top = pad + p as f64 * (panel_h + 20.0);
        let bottom = top + panel_h;
        let v_max = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(value))
            .fold(1e-9, f64::max);
        out.push_str(&format!(
            r#"<text x="{pad}" y="{}">{label} (max {v_max:.1})</text><line x1="{pad}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/><line x1="{pad}" y1="{top}" x2="{pad}" y2="{bottom}" stroke="black"/>"#,
            top - 4.0,
            w - pad
        ));
        for (i, (_, steps)) in series.iter().enumerate() {
            let d: String = steps
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let x = pad + (w - 2.0 * pad) * s.time_s / t_max;
                    let y = bottom - panel_h * value(s) / v_max;
                    format!("{}{x:.1},{y:.1}", if k == 0 { "M" } else { " L" })
                })
                .collect();
            out.push_str(&format!(
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.3"/>"#,
                COLORS[i % COLORS.len()]
            ));
        }
    }
    let legend_y = h - 20.0;
    let mut x = pad;
    for (i, (name, _)) in series.iter().enumerate() {
        out.push_str(&format!(
            r#"<text x="{x:.0}" y="{legend_y}" fill="{}">{}</text>"#,
            COLORS[i % COLORS.len()],
            escape(name)
        ));
        // ~6.5 px per character at this font size, plus a gap.
        x += name.chars().count() as f64 * 6.5 + 16.0;
    }
    out.push_str(&format!(
        r#"<text x="{}" y="{}" text-anchor="end">time (s), 0 … {t_max:.0}</text></svg>"#,
        w - pad,
        h - 35.0
    ));
    out
}

/// QoS (%) against worker-seconds, one labelled point per policy.
pub fn scatter_svg(rows: &[PolicySummary]) -> String {
    let (w, h, pad) = (700.0, 420.0, 60.0);
    let ws_max = rows.iter().map(|r| r.worker_seconds).fold(1.0, f64::max) * 1.1;
    let q_min = rows.iter().map(|r| r.qos * 100.0).fold(100.0, f64::min).min(90.0);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="25">QoS % vs worker-seconds (up and left is better)</text><line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/><text x="{r}" y="{bl}" text-anchor="end">worker-seconds (0 … {ws_max:.0})</text><text x="10" y="{pad}">{q_top}%</text><text x="10" y="{b}">{q_min:.0}%</text>"#,
        b = h - pad,
        r = w - pad,
        bl = h - pad + 30.0,
        q_top = 100,
    );
    for (i, row) in rows.iter().enumerate() {
        let x = pad + (w - 2.0 * pad) * row.worker_seconds / ws_max;
        let y = (h - pad) - (h - 2.0 * pad) * (row.qos * 100.0 - q_min) / (100.0 - q_min).max(1e-9);
        let color = COLORS[i % COLORS.len()];
        out.push_str(&format!(
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="{color}"/><text x="{:.1}" y="{:.1}" fill="{color}">{}</text>"#,
            x + 7.0,
            y - 6.0,
            escape(&row.policy)
        ));
    }
    out.push_str("</svg>");
    out
}
