//! Charts for reports and docs, drawn with `plotters` as SVG and as PNG: axes with ticks and
//! units, a grid, legends instead of labels on the data (which overlap), the static line on
//! scatters. Text is laid out (and, in PNGs, drawn) with a font file found on the system at
//! run time — DejaVu Sans, or Liberation Sans — so none is shipped; without one, drawing fails
//! with [`PlotError::NoFont`] naming the package to install.

use crate::eval::{PolicySummary, StepRecord};
use crate::train::CurvePoint;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// A qualitative palette (the matplotlib "tab10" hues), one per series in order.
const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
];
const GREY: RGBColor = RGBColor(150, 150, 150);

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Where the font for chart text is looked for, in order (Debian and Ubuntu, Fedora, Arch,
/// Alpine, FreeBSD; then Liberation Sans, metric-compatible with Arial).
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/local/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Why a chart could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(
        "no font for the charts' text: install DejaVu Sans (Debian/Ubuntu: apt-get install fonts-dejavu-core; Fedora: dejavu-sans-fonts); looked for {}",
        .searched.join(", ")
    )]
    NoFont { searched: Vec<String> },
    #[error("the font file {path} is not a font plotters can read")]
    BadFont { path: PathBuf },
    #[error("drawing a chart: {0}")]
    Draw(String),
    #[error("encoding a PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Registers the system's font as plotters' "sans-serif", once per process.
fn load_font() -> Result<(), PlotError> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let outcome = LOADED.get_or_init(|| {
        let Some((path, bytes)) = FONT_FILES
            .iter()
            .find_map(|p| std::fs::read(p).ok().map(|bytes| (*p, bytes)))
        else {
            return Err(String::new());
        };
        // plotters keeps fonts for the life of the process; this happens once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| path.to_string())
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(path) if path.is_empty() => Err(PlotError::NoFont {
            searched: FONT_FILES.iter().map(|p| p.to_string()).collect(),
        }),
        Err(path) => Err(PlotError::BadFont { path: path.into() }),
    }
}

/// The file formats a chart is drawn in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Svg, Format::Png];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws a chart of `size` pixels in `format` with `draw`, a closure written once: the macro
/// hands a copy to each backend, so one drawing code makes both formats.
macro_rules! render {
    ($format:expr, $size:expr, $draw:expr) => {
        match $format {
            Format::Svg => svg($size, $draw),
            Format::Png => png($size, $draw),
        }
    };
}

fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
) -> Result<Vec<u8>, PlotError> {
    load_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root).map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(out.into_bytes())
}

fn png(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
) -> Result<Vec<u8>, PlotError> {
    load_font()?;
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root).map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    encode_png(&pixels, size)
}

fn draw_error(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// RGB pixels to a PNG file.
fn encode_png(pixels: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(pixels)?;
    Ok(out)
}

/// Writes the chart `draw` makes to `svg_path` and, as PNG, beside it (`x.svg` → `x.png`).
pub fn write_chart(
    svg_path: &Path,
    draw: impl Fn(Format) -> Result<Vec<u8>, PlotError>,
) -> Result<(), PlotError> {
    for format in Format::ALL {
        let path = svg_path.with_extension(format.extension());
        let bytes = draw(format)?;
        std::fs::write(&path, bytes).map_err(|source| PlotError::Write { path, source })?;
    }
    Ok(())
}

/// A value range with a little room, never empty.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = (hi - lo).abs().max(1e-9);
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

fn finite_max(values: impl Iterator<Item = f64>) -> f64 {
    values.filter(|v| v.is_finite()).fold(0.0, f64::max)
}

/// Four panels sharing the time axis — workers, queue length, arrival rate, QoS in window —
/// one line per policy.
pub fn timeseries(series: &[(String, Vec<StepRecord>)], format: Format) -> Result<Vec<u8>, PlotError> {
    type Value = fn(&StepRecord) -> f64;
    let panels: [(&str, Value); 4] = [
        ("workers (live + starting)", |s| f64::from(s.workers)),
        ("queue length (tasks)", |s| s.queue_length as f64),
        ("arrival rate (tasks/s)", |s| s.arrival_rate),
        ("QoS in window (%)", |s| s.window_qos * 100.0),
    ];
    let t_max = finite_max(series.iter().flat_map(|(_, s)| s.iter().map(|r| r.time_s))).max(1.0);
    let rows = legend_rows(900, series.iter().map(|(n, _)| n.as_str()));
    render!(format, (900, 4 * 190 + 20 + 20 * rows), |root| {
        let (body, legend) = root.split_vertically(4 * 190);
        for (area, (title, value)) in body.split_evenly((4, 1)).iter().zip(panels) {
            let top = finite_max(series.iter().flat_map(|(_, s)| s.iter().map(value))).max(1.0);
            let y_top = if title.starts_with("QoS") {
                105.0
            } else {
                top * 1.08
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0..t_max, 0.0..y_top)?;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .x_label_formatter(&tick(t_max))
                .y_label_formatter(&tick(y_top))
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.08))
                .draw()?;
            for (i, (_, steps)) in series.iter().enumerate() {
                chart.draw_series(LineSeries::new(
                    steps.iter().map(|s| (s.time_s, value(s))),
                    color(i).stroke_width(2),
                ))?;
            }
        }
        draw_legend(&legend, series.iter().map(|(n, _)| n.as_str()))
    })
}

/// Rows of coloured swatches and names, wrapped to the area's width.
fn draw_legend<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: impl Iterator<Item = &'a str>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let width = area.dim_in_pixel().0 as i32;
    let (mut x, mut y) = (60, 10);
    for (i, name) in names.enumerate() {
        // About 7 px a character at this size, and a gap.
        let w = 24 + 7 * name.chars().count() as i32 + 24;
        if x + w > width && x > 60 {
            x = 60;
            y += 20;
        }
        area.draw(&Rectangle::new([(x, y + 2), (x + 18, y + 12)], color(i).filled()))?;
        area.draw(&Text::new(name.to_string(), (x + 24, y), ("sans-serif", 13)))?;
        x += w;
    }
    Ok(())
}

/// Rows a wrapped legend of `names` needs in `width` pixels (see [`draw_legend`]).
fn legend_rows<'a>(width: i32, names: impl Iterator<Item = &'a str>) -> u32 {
    let (mut x, mut rows) = (60, 1);
    for name in names {
        let w = 24 + 7 * name.chars().count() as i32 + 24;
        if x + w > width && x > 60 {
            x = 60;
            rows += 1;
        }
        x += w;
    }
    rows
}

/// Tick labels with as many decimals as the range needs.
fn tick(range_top: f64) -> impl Fn(&f64) -> String {
    move |v| {
        if range_top >= 20.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    }
}

/// QoS (%) against worker-seconds, one point per policy (named in the legend), with the line
/// through the static farms (`static:N`) among them: a policy above and left of the line
/// beats fixed provisioning.
pub fn scatter(rows: &[PolicySummary], format: Format) -> Result<Vec<u8>, PlotError> {
    let mut statics: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.policy.starts_with("static:"))
        .map(|r| (r.worker_seconds, r.qos * 100.0))
        .collect();
    statics.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ws = padded(
        rows.iter()
            .map(|r| r.worker_seconds)
            .fold(f64::INFINITY, f64::min),
        finite_max(rows.iter().map(|r| r.worker_seconds)),
    );
    let q_min = rows
        .iter()
        .map(|r| r.qos * 100.0)
        .filter(|q| q.is_finite())
        .fold(100.0, f64::min);
    let q = (q_min.min(90.0) - 1.0).max(0.0)..100.5;
    let ws_top = ws.end;
    let height = 480.max(60 + 18 * (rows.len() as u32 + 1));
    render!(format, (1000, height), |root| {
        let (plot, legend) = root.split_horizontally(640);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "QoS against worker-seconds (up and left is better)",
                ("sans-serif", 15),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(ws, q)?;
        chart
            .configure_mesh()
            .x_desc("worker-seconds")
            .y_desc("QoS (%)")
            .x_label_formatter(&tick(ws_top))
            .y_label_formatter(&tick(100.0))
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if statics.len() >= 2 {
            chart.draw_series(LineSeries::new(statics.iter().copied(), GREY.stroke_width(2)))?;
        }
        for (i, row) in rows.iter().enumerate() {
            chart.draw_series(std::iter::once(Circle::new(
                (row.worker_seconds, row.qos * 100.0),
                6,
                color(i).filled(),
            )))?;
        }
        // The legend beside the chart, where it hides no point.
        let font = ("sans-serif", 12);
        let mut y = 40;
        if statics.len() >= 2 {
            legend.draw(&PathElement::new(
                vec![(4, y + 6), (22, y + 6)],
                GREY.stroke_width(2),
            ))?;
            legend.draw(&Text::new("static farms", (30, y), font))?;
            y += 18;
        }
        for (i, row) in rows.iter().enumerate() {
            legend.draw(&Circle::new((13, y + 6), 5, color(i).filled()))?;
            legend.draw(&Text::new(
                format!(
                    "{} ({:.2} %, {:.0} worker-s)",
                    row.policy,
                    row.qos * 100.0,
                    row.worker_seconds
                ),
                (30, y),
                font,
            ))?;
            y += 18;
        }
        Ok(())
    })
}

/// The training curve: mean return on the iteration's scenarios, and QoS and mean workers on
/// the original workload, per iteration.
pub fn curve(curve: &[CurvePoint], format: Format) -> Result<Vec<u8>, PlotError> {
    let n = curve.len().max(2) as f64 - 1.0;
    let returns = padded(
        curve.iter().map(|p| p.mean_return).fold(f64::INFINITY, f64::min),
        curve
            .iter()
            .map(|p| p.mean_return)
            .fold(f64::NEG_INFINITY, f64::max),
    );
    let workers_top = finite_max(curve.iter().map(|p| p.original_workers)).max(1.0) * 1.1;
    // The QoS axis from a point below the lowest QoS, so that a curve near 100 % is readable.
    let q_low = curve
        .iter()
        .map(|p| p.original_qos * 100.0)
        .filter(|q| q.is_finite())
        .fold(100.0, f64::min);
    let q_low = (q_low - 1.0).floor().max(0.0);
    render!(format, (820, 560), |root| {
        let (upper, lower) = root.split_vertically(280);
        let mut top = ChartBuilder::on(&upper)
            .caption("mean return on the iteration's scenarios", ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n, returns)?;
        top.configure_mesh()
            .x_desc("iteration")
            .x_label_formatter(&tick(n))
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        top.draw_series(LineSeries::new(
            curve.iter().enumerate().map(|(i, p)| (i as f64, p.mean_return)),
            color(0).stroke_width(2),
        ))?;
        let mut bottom = ChartBuilder::on(&lower)
            .caption(
                "original workload, 5 s start-up: QoS (%, left) and mean workers (right)",
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .right_y_label_area_size(48)
            .build_cartesian_2d(0.0..n, q_low..100.2)?
            .set_secondary_coord(0.0..n, 0.0..workers_top);
        bottom
            .configure_mesh()
            .x_desc("iteration")
            .x_label_formatter(&tick(n))
            .y_label_formatter(&tick(100.0 - q_low))
            .y_desc("QoS (%)")
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        bottom.configure_secondary_axes().y_desc("mean workers").draw()?;
        bottom
            .draw_series(LineSeries::new(
                curve
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i as f64, p.original_qos * 100.0)),
                color(2).stroke_width(2),
            ))?
            .label("QoS")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color(2).stroke_width(2)));
        bottom
            .draw_secondary_series(LineSeries::new(
                curve
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i as f64, p.original_workers)),
                color(1).stroke_width(2),
            ))?
            .label("mean workers")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color(1).stroke_width(2)));
        bottom
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        Ok(())
    })
}

/// One workload's panel of a frontier chart: the static line and each policy's point.
pub struct FrontierPanel {
    pub title: String,
    /// (mean workers, QoS %) of static farms of 1, 2, … workers.
    pub line: Vec<(f64, f64)>,
    /// (policy index, mean workers, QoS %).
    pub points: Vec<(usize, f64, f64)>,
}

/// Small multiples, four to a row: per workload, QoS (90–100 %) against mean workers, the
/// static line in grey and one dot per policy (points below 90 % are left out; the table has
/// them), with one legend for all.
pub fn frontier(panels: &[FrontierPanel], policies: &[String], format: Format) -> Result<Vec<u8>, PlotError> {
    let cols = 4usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let (pw, ph) = (300u32, 230u32);
    render!(format, (cols as u32 * pw, rows as u32 * ph + 70), |root| {
        let (head, body) = root.split_vertically(70);
        head.draw(&Text::new(
            "QoS against mean workers per workload; grey: static farms of 1, 2, … workers; above and left of the line is better",
            (12, 8),
            ("sans-serif", 14),
        ))?;
        draw_legend(&head.margin(30, 0, 0, 0), policies.iter().map(String::as_str))?;
        let areas = body.split_evenly((rows, cols));
        for (area, p) in areas.iter().zip(panels) {
            // From where the line reaches 90 % to three workers past 99.5 %, and every dot.
            let knee = p
                .line
                .iter()
                .position(|(_, q)| *q >= 99.5)
                .unwrap_or(p.line.len());
            let visible: Vec<f64> = p.line[..(knee + 4).min(p.line.len())]
                .iter()
                .filter(|(_, q)| *q >= 90.0)
                .map(|(m, _)| *m)
                .chain(p.points.iter().filter(|(_, _, q)| *q >= 90.0).map(|(_, m, _)| *m))
                .collect();
            let lo = visible.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = visible.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let x = if lo.is_finite() {
                (lo.floor() - 0.5)..(hi.ceil() + 0.5)
            } else {
                0.0..1.0
            };
            let mut chart = ChartBuilder::on(area)
                .caption(&p.title, ("sans-serif", 13))
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(36)
                .build_cartesian_2d(x.clone(), 90.0..100.3)?;
            chart
                .configure_mesh()
                .x_desc("mean workers")
                .x_labels(6)
                .y_labels(6)
                .bold_line_style(BLACK.mix(0.08))
                .light_line_style(WHITE.mix(0.0))
                .label_style(("sans-serif", 11))
                .draw()?;
            let inside = |m: f64, q: f64| x.contains(&m) && q >= 90.0;
            chart.draw_series(LineSeries::new(
                p.line.iter().copied().filter(|(m, q)| inside(*m, *q)),
                GREY.stroke_width(2),
            ))?;
            chart.draw_series(
                p.line
                    .iter()
                    .filter(|(m, q)| inside(*m, *q))
                    .map(|(m, q)| Circle::new((*m, *q), 2, GREY.filled())),
            )?;
            chart.draw_series(
                p.points
                    .iter()
                    .filter(|(_, m, q)| inside(*m, *q))
                    .map(|(i, m, q)| Circle::new((*m, *q), 5, color(*i).filled())),
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(policy: &str, qos: f64, ws: f64) -> PolicySummary {
        PolicySummary {
            policy: policy.into(),
            episodes: 1,
            qos,
            mean_workers: ws / 240.0,
            max_workers: 0.0,
            worker_seconds: ws,
            workers_per_load: 0.0,
            scaling_actions: 0.0,
            completion_p50_s: 0.0,
            completion_p99_s: 0.0,
            clamped: 0.0,
        }
    }

    #[test]
    fn charts_are_svg_with_axes_and_a_legend() {
        let rows = [
            summary("static:12", 0.94, 2900.0),
            summary("static:16", 0.998, 3870.0),
            summary("bundled <guided>", 0.9975, 3950.0),
        ];
        let svg_text = |bytes: Result<Vec<u8>, PlotError>| String::from_utf8(bytes.unwrap()).unwrap();
        let s = svg_text(scatter(&rows, Format::Svg));
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(
            s.contains("worker-seconds") && s.contains("QoS (%)"),
            "axis titles"
        );
        assert!(s.contains("static farms"), "the static line is in the legend");
        // Names are escaped, not markup.
        assert!(s.contains("bundled &lt;guided&gt;"), "{s}");
        let steps = vec![StepRecord {
            time_s: 8.0,
            workers: 12,
            target: 12,
            queue_length: 3,
            arrival_rate: 4.5,
            window_qos: 1.0,
        }];
        let t = svg_text(timeseries(&[("static:12".into(), steps.clone())], Format::Svg));
        assert!(t.contains("time (s)") && t.contains("arrival rate (tasks/s)"));
        // Degenerate inputs still give a document.
        assert!(svg_text(scatter(&[], Format::Svg)).starts_with("<svg"));
        assert!(svg_text(timeseries(&[], Format::Svg)).starts_with("<svg"));
        // The same charts as PNG files of the same size.
        for (png, size) in [
            (scatter(&rows, Format::Png).unwrap(), (1000, 480)),
            (
                timeseries(&[("static:12".into(), steps)], Format::Png).unwrap(),
                (900, 800),
            ),
            (scatter(&[], Format::Png).unwrap(), (1000, 480)),
        ] {
            assert_eq!(png_size(&png), size);
        }
    }

    /// Width and height of a PNG file, read back with the decoder.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let info = reader.info();
        (info.width, info.height)
    }

    #[test]
    fn a_missing_font_names_the_package_to_install() {
        let e = PlotError::NoFont {
            searched: vec!["/a.ttf".into(), "/b.ttf".into()],
        };
        let text = e.to_string();
        assert!(
            text.contains("fonts-dejavu-core") && text.contains("/a.ttf, /b.ttf"),
            "{text}"
        );
    }
}
