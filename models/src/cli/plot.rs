//! The training plot, like Dive into Deep Learning's `Animator`: train
//! loss, train accuracy and test accuracy against the epoch, on one axis.
//!
//! Text is drawn with the Go font compiled into the binary
//! (`models/assets/fonts`, BSD licence) through plotters' pure-Rust
//! `ab_glyph` renderer: no system font, fontconfig or C library is needed,
//! so the plots look the same on every machine.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::CliError;
use super::report::EpochMetrics;

const SIZE: (u32, u32) = (640, 440);

/// The font every text of the plots uses.
const FONT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/Go-Regular.ttf"
));

/// The family name the plots ask for.
const FAMILY: &str = "sans-serif";

/// Registers [`FONT`] as [`FAMILY`] with plotters (once per process).
fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font Go-Regular.ttf is not a valid font".to_owned())
        })
        .clone()
}

/// The three curves: label, colour, and value of an epoch.
type Curve = (&'static str, RGBColor, fn(&EpochMetrics) -> f64);

const CURVES: [Curve; 3] = [
    ("train loss", RGBColor(31, 119, 180), |m| m.train_loss),
    ("train acc", RGBColor(214, 39, 140), |m| m.train_acc),
    ("test acc", RGBColor(44, 160, 44), |m| m.test_acc),
];

/// Draws the plot of `history` on `root`.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    history: &[EpochMetrics],
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
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .caption(title, (FAMILY, 20))
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(first_epoch.min(1.0)..last_epoch, 0.0..top)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .label_style((FAMILY, 14))
        .x_desc("epoch")
        .x_labels(history.len().clamp(2, 12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    for (label, color, value) in CURVES {
        let points: Vec<(f64, f64)> = history
            .iter()
            .map(|m| (m.epoch as f64, value(m)))
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()
}

/// Writes `training.svg` into `dir` (atomically); returns its path.
pub fn write_svg(dir: &Path, title: &str, history: &[EpochMetrics]) -> Result<PathBuf, CliError> {
    let path = dir.join("training.svg");
    let plot_error = |message| CliError::Plot {
        path: path.clone(),
        message,
    };
    register_font().map_err(plot_error)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, title, history).map_err(|e| plot_error(e.to_string()))?;
    }
    cnn_runtime::weights::write_atomic(&path, svg.as_bytes()).map_err(CliError::io("cannot write", &path))?;
    Ok(path)
}

/// Writes `training.png` into `dir` (through a temporary file and a
/// rename, so no partial file is left behind); returns its path.
pub fn write_png(dir: &Path, title: &str, history: &[EpochMetrics]) -> Result<PathBuf, CliError> {
    let path = dir.join("training.png");
    let plot_error = |message| CliError::Plot {
        path: path.clone(),
        message,
    };
    register_font().map_err(plot_error)?;
    // The bitmap encoder picks the format from the extension: keep `.png`.
    let tmp = dir.join(format!(".training.{}.tmp.png", std::process::id()));
    // The backend writes the file when it is dropped, at the end of this block.
    let drawn = {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        draw(&root, title, history).map_err(|e| e.to_string())
    };
    if let Err(message) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(plot_error(message));
    }
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::io("cannot write", &path)(e)
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<EpochMetrics> {
        (1..=3)
            .map(|epoch| EpochMetrics {
                epoch,
                train_loss: 2.0 / epoch as f64,
                train_acc: 0.3 * epoch as f64,
                test_acc: 0.25 * epoch as f64,
                examples_per_sec: 1000.0,
                elapsed_s: epoch as f64,
            })
            .collect()
    }

    /// The embedded font loads, and the SVG carries its text: caption,
    /// axis description and legend.
    #[test]
    fn svg_has_its_text() {
        let dir = std::env::temp_dir().join(format!("cnn-plot-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = write_svg(&dir, "LeNet on Fashion-MNIST", &history()).expect("svg");
        let svg = std::fs::read_to_string(&path).expect("read svg");
        let _ = std::fs::remove_dir_all(&dir);
        for text in [
            "LeNet on Fashion-MNIST",
            "epoch",
            "train loss",
            "train acc",
            "test acc",
        ] {
            assert!(svg.contains(text), "{text:?} missing from the SVG");
        }
    }

    /// The PNG has glyph pixels: its caption band holds dark pixels that a
    /// plot without text would not have.
    #[test]
    fn png_has_rendered_text() {
        let dir = std::env::temp_dir().join(format!("cnn-plot-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = write_png(&dir, "LeNet on Fashion-MNIST", &history()).expect("png");
        let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        // Draw the same plot into memory to inspect the caption band.
        {
            let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
            draw(&root, "LeNet on Fashion-MNIST", &history()).expect("draw");
        }
        let bytes = std::fs::read(&path).expect("read png");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        // The caption sits in the top 40 rows, above the chart's frame.
        let band = &rgb[..(40 * SIZE.0 * 3) as usize];
        let dark = band.chunks(3).filter(|p| p.iter().all(|&c| c < 128)).count();
        assert!(
            dark > 100,
            "only {dark} dark pixels in the caption band: no text drawn"
        );
    }
}
