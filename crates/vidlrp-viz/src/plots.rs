//! Figures of the temporal analysis (plotters), each written as PNG and SVG: share vectors with
//! their fits (Fig. 2), a statistic against a parameter (Figs. 3 and 4), and accuracy against
//! border strength (Fig. 5).
//!
//! Text needs a TrueType font: DejaVu Sans is looked up in the usual system places
//! (Debian/Ubuntu package `fonts-dejavu-core`), or given by `VIDLRP_FONT`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::{Result, VizError};

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
];

fn font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = std::env::var_os("VIDLRP_FONT")
                .map(PathBuf::from)
                .into_iter()
                .chain(FONT_PATHS.iter().map(PathBuf::from))
                .collect();
            let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                "no TrueType font for figure text: install fonts-dejavu-core or set VIDLRP_FONT=/path/to/font.ttf".to_string()
            })?;
            let bytes: &'static [u8] = Box::leak(std::fs::read(path).map_err(|e| e.to_string())?.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a usable font", path.display()))
        })
        .clone()
        .map_err(VizError::Argument)
}

fn err(path: &Path, e: impl std::fmt::Display) -> VizError {
    VizError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One panel of Fig. 2: every sample's share vector (thin), their mean (thick), the quadratic
/// and linear fits (dashed) over `tau`.
pub struct SharePanel {
    /// Title (method name and strengths).
    pub title: String,
    /// The frame coordinate `tau_t` of each share (x axis).
    pub tau: Vec<f64>,
    /// Every sample's share vector.
    pub samples: Vec<Vec<f64>>,
    /// The mean share vector.
    pub mean: Vec<f64>,
    /// `[a, b, c]`.
    pub quadratic: [f64; 3],
    /// `[b', c']`.
    pub linear: [f64; 2],
}

/// A line (with points) of `(x, y)` values, with a legend label.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// An interval `(lo, hi)` per point, drawn as a vertical bar (empty: none).
    pub intervals: Vec<(f64, f64)>,
}

/// Writes `stem.png` and `stem.svg` of a figure drawn by `draw`.
fn both(
    stem: &Path,
    size: (u32, u32),
    draw_png: impl Fn(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
    draw_svg: impl Fn(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    both_at(
        &stem.with_extension("png"),
        &stem.with_extension("svg"),
        size,
        draw_png,
        draw_svg,
    )
}

/// Writes the PNG (`png` must end in `.png`) and the SVG of a figure drawn by `draw`.
fn both_at(
    png: &Path,
    svg: &Path,
    size: (u32, u32),
    draw_png: impl Fn(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
    draw_svg: impl Fn(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    font()?;
    let (png, svg) = (png.to_path_buf(), svg.to_path_buf());
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&png, e))?;
        draw_png(&root)?;
        root.present().map_err(|e| err(&png, e))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&svg, e))?;
        draw_svg(&root)?;
        root.present().map_err(|e| err(&svg, e))?;
    }
    Ok(vec![png, svg])
}

macro_rules! share_panels {
    ($root:expr, $panels:expr) => {{
        let areas = $root.split_evenly((1, $panels.len().max(1)));
        for (area, p) in areas.iter().zip($panels) {
            let tau = &p.tau;
            let ymax = p
                .samples
                .iter()
                .flatten()
                .chain(&p.mean)
                .fold(0.0f64, |m, &v| m.max(v))
                * 1.1;
            let ymin = p
                .samples
                .iter()
                .flatten()
                .chain(&p.mean)
                .fold(f64::INFINITY, |m, &v| m.min(v))
                .min(0.0);
            let mut chart = ChartBuilder::on(area)
                .caption(&p.title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(-1.05f64..1.05f64, ymin..ymax.max(1e-9))
                .map_err(|e| VizError::Argument(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("tau (first frame -1, last +1)")
                .y_desc("relevance share r")
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(|e| VizError::Argument(e.to_string()))?;
            for s in &p.samples {
                chart
                    .draw_series(LineSeries::new(
                        tau.iter().copied().zip(s.iter().copied()),
                        RGBColor(150, 150, 150).mix(0.35),
                    ))
                    .map_err(|e| VizError::Argument(e.to_string()))?;
            }
            chart
                .draw_series(LineSeries::new(
                    tau.iter().copied().zip(p.mean.iter().copied()),
                    BLACK.stroke_width(3),
                ))
                .map_err(|e| VizError::Argument(e.to_string()))?
                .label("mean")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(3))
                });
            let fine: Vec<f64> = (0..=100).map(|i| -1.0 + 0.02 * i as f64).collect();
            let [a, b, c] = p.quadratic;
            chart
                .draw_series(DashedLineSeries::new(
                    fine.iter().map(|&x| (x, a * x * x + b * x + c)),
                    6,
                    4,
                    RED.stroke_width(2),
                ))
                .map_err(|e| VizError::Argument(e.to_string()))?
                .label(format!("quadratic, a = {a:.4}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
            let [bl, cl] = p.linear;
            chart
                .draw_series(DashedLineSeries::new(
                    fine.iter().map(|&x| (x, bl * x + cl)),
                    6,
                    4,
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| VizError::Argument(e.to_string()))?
                .label(format!("linear, b' = {bl:.4}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .position(SeriesLabelPosition::UpperMiddle)
                .draw()
                .map_err(|e| VizError::Argument(e.to_string()))?;
        }
        Ok(())
    }};
}

/// Fig. 2: one panel per method. Writes `stem.png` and `stem.svg`.
pub fn share_figure(stem: &Path, panels: &[SharePanel]) -> Result<Vec<PathBuf>> {
    let size = (420 * panels.len().max(1) as u32, 400);
    both(
        stem,
        size,
        |root| share_panels!(root, panels),
        |root| share_panels!(root, panels),
    )
}

macro_rules! xy_chart {
    ($root:expr, $title:expr, $xdesc:expr, $ydesc:expr, $series:expr, $log2x:expr) => {{
        let all: Vec<(f64, f64)> = $series
            .iter()
            .flat_map(|s: &Series| s.points.iter().copied())
            .collect();
        let tx = |x: f64| if $log2x { (x + 1.0).log2() } else { x };
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in &all {
            x0 = x0.min(tx(x));
            x1 = x1.max(tx(x));
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        for &(lo, hi) in $series.iter().flat_map(|s: &Series| s.intervals.iter()) {
            y0 = y0.min(lo);
            y1 = y1.max(hi);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0).abs() * 0.1).max(1e-6);
        let xpad = ((x1 - x0).abs() * 0.05).max(0.5);
        let mut chart = ChartBuilder::on($root)
            .caption($title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - xpad)..(x1 + xpad), (y0 - pad)..(y1 + pad))
            .map_err(|e| VizError::Argument(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc($xdesc)
            .y_desc($ydesc)
            .label_style(("sans-serif", 12))
            .x_label_formatter(&|v| {
                if $log2x {
                    format!("{:.0}", v.exp2() - 1.0)
                } else if (v - v.round()).abs() < 1e-9 {
                    // Whole numbers (offsets, counts) without decimals.
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                }
            })
            .draw()
            .map_err(|e| VizError::Argument(e.to_string()))?;
        let colors = [BLACK, RED, BLUE, GREEN, MAGENTA, CYAN];
        for (i, s) in $series.iter().enumerate() {
            let color = colors[i % colors.len()];
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (tx(x), y)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| VizError::Argument(e.to_string()))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| VizError::Argument(e.to_string()))?;
            let bars = pts.iter().zip(&s.intervals).map(|(&(x, _), &(lo, hi))| {
                PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1))
            });
            chart
                .draw_series(bars)
                .map_err(|e| VizError::Argument(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| VizError::Argument(e.to_string()))?;
        Ok(())
    }};
}

/// A line chart of `series` (Figs. 3, 4, 5). With `log2x` the x axis is `log2(x + 1)` (steps
/// 0, 1, 2, 4, ... spread evenly), labelled with `x`.
pub fn xy_figure(
    stem: &Path,
    title: &str,
    xdesc: &str,
    ydesc: &str,
    series: &[Series],
    log2x: bool,
) -> Result<Vec<PathBuf>> {
    both(
        stem,
        (640, 440),
        |root| xy_chart!(root, title, xdesc, ydesc, series, log2x),
        |root| xy_chart!(root, title, xdesc, ydesc, series, log2x),
    )
}

/// [`xy_figure`] written at the paths `png` (ending in `.png`) and `svg`: e.g. staged
/// outputs.
///
/// **Errors** if a file cannot be written.
pub fn xy_figure_at(
    [png, svg]: [&Path; 2],
    title: &str,
    [xdesc, ydesc]: [&str; 2],
    series: &[Series],
    log2x: bool,
) -> Result<Vec<PathBuf>> {
    both_at(
        png,
        svg,
        (640, 440),
        |root| xy_chart!(root, title, xdesc, ydesc, series, log2x),
        |root| xy_chart!(root, title, xdesc, ydesc, series, log2x),
    )
}
