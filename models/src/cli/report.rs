//! What the tool prints: the per-epoch table, the test-set evaluation with
//! its per-class summary, and number formatting.

use std::fmt::Write as _;

use cnn_runtime::data::{Dataset, NUM_CLASSES};
use cnn_runtime::train;
use cnn_runtime::Network;

/// Fashion-MNIST's class names, by label.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The name of class `class`, or `"?"` outside `0..NUM_CLASSES`.
pub fn class_name(class: usize) -> &'static str {
    CLASS_NAMES.get(class).copied().unwrap_or("?")
}

/// `n` with thousands separators: `60,000`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    // Digits left in the current group: the first group takes the remainder.
    let mut left = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    for (i, c) in digits.chars().enumerate() {
        out.push(c);
        left -= 1;
        if left == 0 && i + 1 < digits.len() {
            out.push(',');
            left = 3;
        }
    }
    out
}

/// `x` as typed on a command line: `0.9`, `0.001`, or `1e30` for very
/// large and very small magnitudes.
pub fn number(x: f32) -> String {
    let magnitude = x.abs();
    if x.is_finite() && magnitude != 0.0 && !(1e-4..1e5).contains(&magnitude) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// `x` in a table column of `width`: four decimals, or scientific notation
/// when that would not fit.
fn column(x: f64, width: usize) -> String {
    if x.is_finite() && x.abs() >= 1e5 {
        format!("{x:>width$.3e}")
    } else {
        format!("{x:>width$.4}")
    }
}

/// The results of one epoch: a row of the table and of `metrics.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps, weighted by batch size.
    pub train_loss: f64,
    /// Training accuracy, accumulated over the epoch from the forward
    /// passes before each step (as Dive into Deep Learning reports it).
    pub train_acc: f64,
    /// Accuracy on the whole test set after the epoch.
    pub test_acc: f64,
    /// Training examples per second (the training phase only).
    pub examples_per_sec: f64,
    /// Seconds since training began, evaluation included.
    pub elapsed_s: f64,
}

/// The header line of the epoch table.
pub fn table_header() -> String {
    format!(
        "{:>5}  {:>10}  {:>9}  {:>8}  {:>10}  {:>9}",
        "epoch", "train loss", "train acc", "test acc", "examples/s", "elapsed s"
    )
}

impl EpochMetrics {
    /// This epoch as a row of the table under [`table_header`].
    pub fn table_row(&self) -> String {
        format!(
            "{:>5}  {}  {:>9.4}  {:>8.4}  {:>10}  {:>9.1}",
            self.epoch,
            column(self.train_loss, 10),
            self.train_acc,
            self.test_acc,
            thousands(self.examples_per_sec.round() as usize),
            self.elapsed_s
        )
    }

    /// The header of `metrics.csv`.
    pub const CSV_HEADER: &'static str = "epoch,train_loss,train_acc,test_acc,examples_per_sec,elapsed_s";

    /// This epoch as a line of `metrics.csv` (no newline).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.1},{:.3}",
            self.epoch, self.train_loss, self.train_acc, self.test_acc, self.examples_per_sec, self.elapsed_s
        )
    }
}

/// `metrics.csv`: the header and one line per epoch.
pub fn metrics_csv(history: &[EpochMetrics]) -> String {
    let mut csv = String::from(EpochMetrics::CSV_HEADER);
    csv.push('\n');
    for m in history {
        csv.push_str(&m.csv_row());
        csv.push('\n');
    }
    csv
}

/// Predictions of a net on a labelled set, tallied by true and predicted
/// class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// `confusion[label][predicted]`: how many examples of class `label`
    /// the net classed as `predicted`.
    pub confusion: [[usize; NUM_CLASSES]; NUM_CLASSES],
}

impl Evaluation {
    /// Runs `net` on every example of `data` (batched) and tallies the
    /// predictions. `N::OUTPUT_LEN` must be `NUM_CLASSES` (checked by the
    /// callers before training or loading).
    pub fn of<N: Network>(net: &N, data: &Dataset) -> Evaluation {
        let predicted = train::predict(net, &data.images);
        let mut confusion = [[0; NUM_CLASSES]; NUM_CLASSES];
        for (&label, &p) in data.labels.iter().zip(&predicted) {
            confusion[usize::from(label)][p.min(NUM_CLASSES - 1)] += 1;
        }
        Evaluation { confusion }
    }

    /// Number of examples.
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    /// Number of correct predictions.
    pub fn correct(&self) -> usize {
        (0..NUM_CLASSES).map(|c| self.confusion[c][c]).sum()
    }

    /// Fraction of correct predictions (0 for an empty set).
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// The per-class table: accuracy of each class and the class it is most
    /// often mistaken for, then the overall accuracy.
    pub fn per_class_report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "per-class test accuracy ({} images):",
            thousands(self.total())
        );
        let _ = writeln!(
            out,
            "  {:<11}  {:>6}  {:>8}  most often mistaken for",
            "class", "images", "accuracy"
        );
        for (class, row) in self.confusion.iter().enumerate() {
            let images: usize = row.iter().sum();
            let confusion = row
                .iter()
                .enumerate()
                .filter(|&(p, &n)| p != class && n > 0)
                // Most frequent; the lowest class id on ties.
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
            let mistaken = match confusion {
                Some((p, &n)) => format!(
                    "{} ({:.1}%, {})",
                    class_name(p),
                    100.0 * ratio(n, images),
                    thousands(n)
                ),
                None => "-".to_owned(),
            };
            let accuracy = if images == 0 {
                "-".to_owned()
            } else {
                format!("{:.4}", ratio(row[class], images))
            };
            let _ = writeln!(
                out,
                "  {:<11}  {:>6}  {:>8}  {mistaken}",
                class_name(class),
                thousands(images),
                accuracy
            );
        }
        let _ = writeln!(
            out,
            "test accuracy: {:.4} ({} of {} correct)",
            self.accuracy(),
            thousands(self.correct()),
            thousands(self.total())
        );
        out
    }
}

/// `num / den`, or 0 when `den` is 0.
pub fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(61706), "61,706");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn numbers_as_typed() {
        assert_eq!(number(0.9), "0.9");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(1e30), "1e30");
        assert_eq!(number(0.0), "0");
        assert_eq!(column(0.5, 8), "  0.5000");
        assert_eq!(column(3.4e30, 10), "  3.400e30");
    }

    #[test]
    fn report_names_the_most_common_confusion() {
        let mut e = Evaluation {
            confusion: [[0; NUM_CLASSES]; NUM_CLASSES],
        };
        e.confusion[0][0] = 8;
        e.confusion[0][6] = 2;
        e.confusion[1][1] = 10;
        assert_eq!(e.total(), 20);
        assert_eq!(e.correct(), 18);
        let report = e.per_class_report();
        assert!(report.contains("T-shirt/top"), "{report}");
        assert!(report.contains("Shirt (20.0%, 2)"), "{report}");
        assert!(
            report.contains("test accuracy: 0.9000 (18 of 20 correct)"),
            "{report}"
        );
    }
}
