//! Redraws a training curve's chart from the CSV `train` wrote beside the model:
//! `cargo run -p agent --example replot_curve -- models/calendar.curve.csv` writes
//! `models/calendar.curve.svg` and `models/calendar.curve.png`.

use agent::train::CurvePoint;

fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: replot_curve CURVE.csv"));
    let text = std::fs::read_to_string(&path).expect("read the curve");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("generation,mean_return,mean_qos,mean_workers,original_qos,original_workers"),
        "not a curve written by train"
    );
    let curve: Vec<CurvePoint> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|x| x.parse().expect("a number")).collect();
            CurvePoint {
                generation: v[0] as u32,
                mean_return: v[1],
                mean_qos: v[2],
                mean_workers: v[3],
                original_qos: v[4],
                original_workers: v[5],
            }
        })
        .collect();
    let out = path.with_extension("svg");
    agent::plot::write_chart(&out, |f| agent::train::curve_chart(&curve, f)).expect("write the chart");
    println!(
        "wrote {} and {}",
        out.display(),
        out.with_extension("png").display()
    );
}
