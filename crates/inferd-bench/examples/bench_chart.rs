//! Draws `docs/benchmarks.png` for `scripts/bench-report`: requests/s per load and server
//! (left) and latency percentiles (right), from the summary JSON the report script writes.
//!
//!     cargo run --release -p inferd-bench --example bench_chart -- SUMMARY.json OUT.png [FONT.ttf]
//!
//! Summary: `{"title": "...", "series": [{"label", "server", "rps", "p50", "p90", "p99",
//! "p99.9"}]}`. Text uses DejaVu Sans (Debian `fonts-dejavu-core`) through ab_glyph, so no
//! system font library is needed.
#![forbid(unsafe_code)]

use std::error::Error;
use std::process::ExitCode;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde::Deserialize;

const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

#[derive(Deserialize)]
struct Summary {
    title: String,
    series: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    label: String,
    server: String,
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    #[serde(rename = "p99.9")]
    p99_9: f64,
}

impl Series {
    fn percentiles(&self) -> [f64; 4] {
        [self.p50, self.p90, self.p99, self.p99_9]
    }
}

fn color(server: &str, i: usize) -> RGBColor {
    if server.contains("Flask") {
        // Flask series in warm tones, inferd's in cool ones, so the pairs read at a glance.
        [
            RGBColor(214, 96, 77),
            RGBColor(244, 165, 130),
            RGBColor(178, 24, 43),
        ][i % 3]
    } else {
        [
            RGBColor(33, 102, 172),
            RGBColor(67, 147, 195),
            RGBColor(27, 120, 55),
            RGBColor(90, 174, 97),
            RGBColor(118, 42, 131),
        ][i % 5]
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bench_chart SUMMARY.json OUT.png [FONT.ttf]");
        return ExitCode::from(64);
    }
    match draw(
        &args[0],
        &args[1],
        args.get(2).map_or(DEFAULT_FONT, String::as_str),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_chart: {e}");
            ExitCode::FAILURE
        }
    }
}

fn draw(summary: &str, out: &str, font: &str) -> Result<(), Box<dyn Error>> {
    let summary: Summary = serde_json::from_slice(&std::fs::read(summary)?)?;
    if summary.series.is_empty() {
        return Err("the summary has no series".into());
    }
    let font_bytes = std::fs::read(font)
        .map_err(|e| format!("font {font}: {e} (Debian: apt-get install fonts-dejavu-core)"))?;
    // ab_glyph wants the font for the life of the process; it is read once.
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font_bytes.into_boxed_slice()),
    )
    .map_err(|_| format!("{font} is not a usable TrueType font"))?;

    let root = BitMapBackend::new(out, (1400, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&summary.title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(640);
    throughput(&left, &summary.series)?;
    latency(&right, &summary.series)?;
    root.present()?;
    Ok(())
}

fn throughput(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), Box<dyn Error>> {
    let n = series.len();
    let top = series.iter().map(|s| s.rps).fold(1.0, f64::max) * 4.0;
    let mut chart = ChartBuilder::on(area)
        .caption("Throughput (requests/s, log scale)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, (1.0..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("requests/s")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let x = i as f64;
        let fill = color(&s.server, i).filled();
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.15, 1.0), (x + 0.85, s.rps.max(1.0))],
            fill,
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.0}", s.rps),
            (x + 0.18, s.rps.max(1.0) * 1.25),
            ("sans-serif", 12),
        )))?;
        // The bar's name, written upwards inside its foot.
        let style = TextStyle::from(("sans-serif", 13))
            .color(&WHITE)
            .transform(FontTransform::Rotate270);
        chart.draw_series(std::iter::once(Text::new(
            s.label.clone(),
            (x + 0.42, 1.6),
            style,
        )))?;
    }
    Ok(())
}

fn latency(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), Box<dyn Error>> {
    let all = series.iter().flat_map(Series::percentiles);
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = (lo.max(1e-3) / 2.0).max(1e-3);
    // Headroom above the highest line keeps the legend clear of it.
    let hi = hi.max(lo * 10.0) * 40.0;
    let mut chart = ChartBuilder::on(area)
        .caption("Latency percentiles (ms, log scale)", ("sans-serif", 18))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0usize..PERCENTILES.len() - 1, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(PERCENTILES.len())
        .x_label_formatter(&|i| {
            PERCENTILES
                .get(*i)
                .map_or(String::new(), |p| p.0.to_string())
        })
        .y_label_formatter(&|v| format!("{v}"))
        .y_desc("milliseconds")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let c = color(&s.server, i);
        let points: Vec<(usize, f64)> = s
            .percentiles()
            .iter()
            .enumerate()
            .map(|(x, &v)| (x, v.max(lo)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}
