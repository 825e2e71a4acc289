//! The training plot, like Dive into Deep Learning's `Animator`: train
//! loss, train accuracy and test accuracy against the epoch, on one axis.
//!
//! Text (caption, tick labels, legend) needs a system font through
//! fontconfig. When none can be loaded, the plot is drawn again without any
//! text, so the curves are still there, and the caller is told.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::CliError;
use super::report::EpochMetrics;

const SIZE: (u32, u32) = (640, 440);

/// The three curves: label, colour, and value of an epoch.
type Curve = (&'static str, RGBColor, fn(&EpochMetrics) -> f64);

const CURVES: [Curve; 3] = [
    ("train loss", RGBColor(31, 119, 180), |m| m.train_loss),
    ("train acc", RGBColor(214, 39, 140), |m| m.train_acc),
    ("test acc", RGBColor(44, 160, 44), |m| m.test_acc),
];

/// Draws the plot of `history` on `root`, with or without text.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    history: &[EpochMetrics],
    with_text: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let last_epoch = history.last().map_or(1, |m| m.epoch).max(2) as f64;
    let first_epoch = history.first().map_or(1, |m| m.epoch) as f64;
    // Losses can start far above 1; the accuracies live in [0, 1].
    let top = history
        .iter()
        .map(|m| m.train_loss)
        .filter(|l| l.is_finite())
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut builder = ChartBuilder::on(root);
    builder.margin(16);
    if with_text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(50);
    }
    let mut chart = builder.build_cartesian_2d(first_epoch.min(1.0)..last_epoch, 0.0..top)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12));
    if with_text {
        mesh.x_desc("epoch")
            .x_labels(history.len().clamp(2, 12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.1}"));
        mesh.draw()?;
    } else {
        // No labels (they need a font): grid lines at each epoch and every 0.2.
        let grid = BLACK.mix(0.12);
        for epoch in (first_epoch.min(1.0) as usize)..=(last_epoch as usize) {
            let x = epoch as f64;
            chart.draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, top)], grid)))?;
        }
        for k in 0..=((top / 0.2) as usize) {
            let y = k as f64 * 0.2;
            let line = vec![(first_epoch.min(1.0), y), (last_epoch, y)];
            chart.draw_series(std::iter::once(PathElement::new(line, grid)))?;
        }
    }
    for (label, color, value) in CURVES {
        let points: Vec<(f64, f64)> = history
            .iter()
            .map(|m| (m.epoch as f64, value(m)))
            .filter(|p| p.1.is_finite())
            .collect();
        let line = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        if with_text {
            line.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    if with_text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()
}

/// How a plot came out.
#[derive(Debug)]
pub struct Plotted {
    /// The file written.
    pub path: PathBuf,
    /// Why it has no text, if it has none.
    pub without_text: Option<String>,
}

/// Draws with text, or without if text fails.
fn draw_either<DB: DrawingBackend>(
    make: impl Fn() -> DrawingArea<DB, Shift>,
    title: &str,
    history: &[EpochMetrics],
) -> Result<Option<String>, String> {
    // Each attempt drops its backend (which may write the file) before the
    // next one starts.
    let with_text = draw(&make(), title, history, true).map_err(|e| e.to_string());
    match with_text {
        Ok(()) => Ok(None),
        Err(why) => {
            draw(&make(), title, history, false).map_err(|e| e.to_string())?;
            Ok(Some(why))
        }
    }
}

/// Writes `training.svg` into `dir` (atomically).
pub fn write_svg(dir: &Path, title: &str, history: &[EpochMetrics]) -> Result<Plotted, CliError> {
    let path = dir.join("training.svg");
    let plot_error = |message| CliError::Plot {
        path: path.clone(),
        message,
    };
    let mut svg = String::new();
    let without_text = draw_either_svg(&mut svg, title, history).map_err(plot_error)?;
    cnn_runtime::weights::write_atomic(&path, svg.as_bytes()).map_err(CliError::io("cannot write", &path))?;
    Ok(Plotted { path, without_text })
}

/// [`draw_either`] for SVG, whose backend borrows the output string.
fn draw_either_svg(
    out: &mut String,
    title: &str,
    history: &[EpochMetrics],
) -> Result<Option<String>, String> {
    let first = {
        let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
        draw(&root, title, history, true).map_err(|e| e.to_string())
    };
    match first {
        Ok(()) => Ok(None),
        Err(with_text) => {
            out.clear();
            let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
            draw(&root, title, history, false).map_err(|e| e.to_string())?;
            Ok(Some(with_text))
        }
    }
}

/// Writes `training.png` into `dir` (through a temporary file and a
/// rename, so no partial file is left behind).
pub fn write_png(dir: &Path, title: &str, history: &[EpochMetrics]) -> Result<Plotted, CliError> {
    let path = dir.join("training.png");
    // The bitmap encoder picks the format from the extension: keep `.png`.
    let tmp = dir.join(format!(".training.{}.tmp.png", std::process::id()));
    let drawn = draw_either(
        || BitMapBackend::new(&tmp, SIZE).into_drawing_area(),
        title,
        history,
    );
    let without_text = match drawn {
        Ok(without_text) => without_text,
        Err(message) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(CliError::Plot { path, message });
        }
    };
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::io("cannot write", &path)(e)
    })?;
    Ok(Plotted { path, without_text })
}
