//! Charts of a tuning run, as SVG and PNG: throughput against P99 per configuration (with the SLA
//! line and the recommendation marked), and the latency distribution of each configuration.
//!
//! Text is laid out with a DejaVu Sans subset shipped in `assets/` (Bitstream Vera licence), so
//! drawing needs no system font library and gives the same picture on every machine.

use std::path::Path;
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::tune::TuneRun;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The shipped file is a valid TrueType font; a failure would only blank the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Colours for successive series: readable on white and distinct from the SLA red.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
];
const SLA_RED: RGBColor = RGBColor(214, 39, 40);
const SIZE: (u32, u32) = (1000, 640);

/// Writes `throughput_vs_p99.{svg,png}` and `latency.{svg,png}` into `dir`.
///
/// # Errors
/// A file cannot be written.
pub fn write_all(dir: &Path, run: &TuneRun) -> anyhow::Result<()> {
    register_font();
    let svg = dir.join("throughput_vs_p99.svg");
    throughput_vs_p99(SVGBackend::new(&svg, SIZE).into_drawing_area(), run)?;
    let png = dir.join("throughput_vs_p99.png");
    throughput_vs_p99(BitMapBackend::new(&png, SIZE).into_drawing_area(), run)?;
    let svg = dir.join("latency.svg");
    latency(SVGBackend::new(&svg, SIZE).into_drawing_area(), run)?;
    let png = dir.join("latency.png");
    latency(BitMapBackend::new(&png, SIZE).into_drawing_area(), run)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// A short label for a point: the case name without its `<model>_<mode>_` prefix.
fn short(run: &TuneRun, i: usize) -> String {
    let c = &run.cases[i];
    let prefix = format!("{}_{}_", c.case.model, c.case.mode);
    c.case.name.strip_prefix(&prefix).unwrap_or(&c.case.name).to_owned()
}

fn targets(run: &TuneRun) -> Vec<String> {
    let mut t: Vec<String> = Vec::new();
    for c in &run.cases {
        if !t.contains(&c.target) {
            t.push(c.target.clone());
        }
    }
    t
}

fn throughput_vs_p99<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    run: &TuneRun,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let max_p99 = run.cases.iter().map(|c| c.result.latency_ms.p99).fold(run.sla_p99_ms, f64::max);
    let max_rps = run.cases.iter().map(|c| c.result.throughput_rps).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput against P99 latency (SLA: P99 ≤ {} ms)", run.sla_p99_ms),
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..max_p99 * 1.15, 0f64..max_rps * 1.2)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("P99 latency (ms)")
        .y_desc("Throughput (requests/s)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(run.sla_p99_ms, 0.0), (run.sla_p99_ms, max_rps * 1.2)],
            8,
            6,
            SLA_RED.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("SLA {} ms", run.sla_p99_ms))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SLA_RED.stroke_width(2)));
    // Labels go where they overlap no other label or point, so close configurations stay legible.
    let pixels: Vec<(i32, i32)> = run
        .cases
        .iter()
        .map(|c| chart.backend_coord(&(c.result.latency_ms.p99, c.result.throughput_rps)))
        .collect();
    let labels: Vec<String> = (0..run.cases.len()).map(|i| short(run, i)).collect();
    let offsets = place_labels(&pixels, &labels);
    for (t, target) in targets(run).iter().enumerate() {
        let color = PALETTE[t % PALETTE.len()];
        let points: Vec<(usize, f64, f64)> = run
            .cases
            .iter()
            .enumerate()
            .filter(|(_, c)| &c.target == target)
            .map(|(i, c)| (i, c.result.latency_ms.p99, c.result.throughput_rps))
            .collect();
        chart
            .draw_series(points.iter().map(|(i, x, y)| {
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 6, color.filled())
                    + Text::new(
                        labels[*i].clone(),
                        offsets[*i],
                        ("sans-serif", LABEL_PX).into_font().color(&BLACK),
                    )
            }))
            .map_err(err)?
            .label(target.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, color.filled()));
    }
    if let Some(best) = &run.choice.best {
        let c = &run.cases[best.index];
        let at = (c.result.latency_ms.p99, c.result.throughput_rps);
        chart
            .draw_series([Circle::new(at, 12, SLA_RED.stroke_width(3))])
            .map_err(err)?
            .label("recommended")
            .legend(|(x, y)| Circle::new((x + 10, y), 7, SLA_RED.stroke_width(2)));
    }
    // The legend takes the corner it hides the fewest points and labels in: the lower right, where
    // slow configurations land, holds TorchServe's in a side-by-side report.
    let (x_range, y_range) = chart.plotting_area().get_pixel_range();
    let area = (x_range.start, y_range.start, x_range.end, y_range.end);
    let mut entries: Vec<String> = targets(run);
    entries.push(format!("SLA {} ms", run.sla_p99_ms));
    entries.extend(run.choice.best.as_ref().map(|_| "recommended".to_owned()));
    let mut boxes: Vec<Rect> = pixels.iter().map(|&(x, y)| (x - 7, y - 7, x + 7, y + 7)).collect();
    boxes.extend(pixels.iter().zip(&offsets).zip(&labels).map(|((&(x, y), &(dx, dy)), label)| {
        let w = text_width(label);
        (x + dx, y + dy, x + dx + w, y + dy + LABEL_PX as i32)
    }));
    finish(&root, &mut chart, legend_corner(area, &entries, &boxes), 15)
}

/// A box in pixels: left, top, right, bottom.
type Rect = (i32, i32, i32, i32);

fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// The corner of the plotting `area` where a legend of `entries` covers the fewest of `boxes`
/// (points and their labels); on a tie, the first of lower right, upper right, upper left and
/// lower left. The legend's size follows plotters' layout (0.3.7, `SeriesLabelStyle::draw`): lines
/// of 1.25 × the 15 px font, 10 px of padding around them, 30 px for the markers, and the box 5 px
/// inside the plotting area.
fn legend_corner(area: Rect, entries: &[String], boxes: &[Rect]) -> SeriesLabelPosition {
    let w = 50 + entries.iter().map(|e| text_width(e)).max().unwrap_or(0);
    let h = 20 + 19 * i32::try_from(entries.len()).unwrap_or(i32::MAX / 32);
    let (left, top, right, bottom) = area;
    let corners = [
        (SeriesLabelPosition::LowerRight, (right - 5 - w, bottom - 5 - h)),
        (SeriesLabelPosition::UpperRight, (right - 5 - w, top + 5)),
        (SeriesLabelPosition::UpperLeft, (left + 5, top + 5)),
        (SeriesLabelPosition::LowerLeft, (left + 5, bottom - 5 - h)),
    ];
    let mut best = (usize::MAX, SeriesLabelPosition::LowerRight);
    for (position, (x, y)) in corners {
        let hidden = boxes.iter().filter(|&&b| overlaps((x, y, x + w, y + h), b)).count();
        if hidden < best.0 {
            best = (hidden, position);
        }
    }
    best.1
}

/// Draws the legend of `chart` at `position` and writes the picture out.
fn finish<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
    font_px: u32,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", font_px))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Size of the point labels, and the width of one of their characters (DejaVu Sans at 14 px
/// averages under 8 px), for keeping labels apart.
const LABEL_PX: u32 = 14;
const CHAR_PX: i32 = 8;

/// Estimated width in pixels of `text` at the label size.
fn text_width(text: &str) -> i32 {
    CHAR_PX * i32::try_from(text.chars().count()).unwrap_or(i32::MAX / 16)
}

/// For each point (in pixels), where its label goes relative to it: the first of right-above,
/// right-below, left-above and left-below whose box overlaps no label placed before it and no
/// point, else right-above.
fn place_labels(points: &[(i32, i32)], labels: &[String]) -> Vec<(i32, i32)> {
    let h = LABEL_PX as i32;
    let dots: Vec<Rect> = points.iter().map(|&(x, y)| (x - 7, y - 7, x + 7, y + 7)).collect();
    let mut placed: Vec<Rect> = Vec::new();
    points
        .iter()
        .zip(labels)
        .map(|(&(x, y), label)| {
            let w = text_width(label);
            // 14 px to the side clears the 12 px ring around the recommended point too.
            let candidates = [(14, -h - 2), (14, 4), (-w - 14, -h - 2), (-w - 14, 4)];
            let fits = |&(dx, dy): &(i32, i32)| {
                let rect = (x + dx, y + dy, x + dx + w, y + dy + h);
                !placed.iter().chain(&dots).any(|&r| overlaps(rect, r))
            };
            let (dx, dy) = candidates.iter().copied().find(fits).unwrap_or(candidates[0]);
            placed.push((x + dx, y + dy, x + dx + w, y + dy + h));
            (dx, dy)
        })
        .collect()
}

/// x position of a quantile: its number of nines (0.9 → 1, 0.99 → 2), so the tail gets room.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-5).log10()
}

fn latency<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, run: &TuneRun) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = run
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = if targets(run).len() > 1 {
                format!("{} {}", c.target, short(run, i))
            } else {
                short(run, i)
            };
            let points = c
                .result
                .distribution
                .iter()
                .filter(|q| q.quantile < 1.0)
                .map(|q| (nines(q.quantile), q.ms))
                .collect();
            (name, points)
        })
        .collect();
    let max_x =
        series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).fold(3.0, f64::max).ceil();
    let max_ms =
        series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(run.sla_p99_ms, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency distribution per configuration", ("sans-serif", 24))
        .margin(20)
        // Room for the last percentile label, centred on the right edge.
        .margin_right(45)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..max_x, 0f64..max_ms * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("Percentile")
        .y_desc("Latency (ms)")
        .y_label_formatter(&|v| format!("{v:.1}"))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .x_labels(max_x as usize + 1)
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            n => format!("{:.*}%", (n - 2).max(0) as usize, 100.0 - 100.0 * 10f64.powi(-n)),
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, run.sla_p99_ms), (max_x, run.sla_p99_ms)],
            8,
            6,
            SLA_RED.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("SLA {} ms", run.sla_p99_ms))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SLA_RED.stroke_width(2)));
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    finish(&root, &mut chart, SeriesLabelPosition::UpperLeft, 14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_close_points_do_not_overlap() {
        // Two points 25 px apart on one line (w1_b8 and w2_b8 in docs/results/tuning), and a third below.
        let points = [(760, 268), (785, 268), (770, 290)];
        let labels = ["w2_b8".to_owned(), "w1_b8".to_owned(), "w2_b4".to_owned()];
        let offsets = place_labels(&points, &labels);
        let rect = |i: usize| {
            let (x, y) = (points[i].0 + offsets[i].0, points[i].1 + offsets[i].1);
            (x, y, x + 40, y + 14)
        };
        for i in 0..3 {
            for j in i + 1..3 {
                let (a, b) = (rect(i), rect(j));
                let overlap = a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3;
                assert!(!overlap, "labels {i} and {j} overlap: {offsets:?}");
            }
        }
        // A lone point keeps the usual place, right and above.
        assert_eq!(place_labels(&[(100, 100)], &["w1_b1".to_owned()]), [(14, -16)]);
    }

    #[test]
    fn the_legend_avoids_the_points() {
        let area = (100, 70, 980, 570);
        let entries = ["torchserve".to_owned(), "oxserve".to_owned(), "SLA 4 ms".to_owned()];
        // Nothing in the lower right: the legend stays there.
        let top_left = [(150, 100, 164, 114)];
        assert!(matches!(
            legend_corner(area, &entries, &top_left),
            SeriesLabelPosition::LowerRight
        ));
        // A slow configuration in the lower right (TorchServe's batch 1 in the side-by-side run).
        let slow = [(150, 100, 164, 114), (950, 540, 964, 554)];
        assert!(matches!(legend_corner(area, &entries, &slow), SeriesLabelPosition::UpperRight));
    }
}
