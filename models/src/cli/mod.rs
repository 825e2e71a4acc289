//! The commands of the `cnn` tool. [`run`] picks the net type once, from
//! the registry in the `models` crate ([`models::with_net`]), and every
//! command below is generic over `N: Network`.

/// Prints a line on stdout. A closed stdout is ignored, so training goes on
/// (and saves its results) when the reader has gone away.
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stdout(), $($arg)*);
    }};
}

/// Prints `warning: ...` on stderr.
macro_rules! warn {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stderr(), "warning: {}", format_args!($($arg)*));
    }};
}

pub mod args;
pub mod checkpoint;
pub mod dataset;
pub mod error;
pub mod interrupt;
pub mod plot;
pub mod quantize;
pub mod report;
pub mod run_dir;
pub mod train;
pub mod weights_file;

use std::io::{BufWriter, Write as _};

use cnn_runtime::data::{self, Split};
use cnn_runtime::Network;
use models::{NetVisitor, NETS};

use args::{Cli, Command, EvalConfig, InferConfig};
use dataset::Source;
use error::CliError;
use report::{class_name, thousands, Evaluation};

/// Runs the command of `cli` (`train` with its defaults if there is none).
pub fn run(cli: Cli) -> Result<(), CliError> {
    let command = match cli.command {
        Some(command) => command,
        None => {
            use clap::Parser as _;
            // `cnn` alone is `cnn train`: parse that, defaults and all.
            match Cli::parse_from(["cnn", "train"]).command {
                Some(command) => command,
                None => unreachable!("`cnn train` parses to the train command"),
            }
        }
    };
    match command {
        Command::Train(args) => match train::command(args) {
            // An interrupted run saved its checkpoint: say so and exit with
            // the signal's status (the lock and handlers are released by now).
            Err(e @ CliError::Interrupted { .. }) => {
                let _ = std::io::stdout().flush();
                let _ = writeln!(std::io::stderr(), "{e}");
                std::process::exit(i32::from(e.exit_code()))
            }
            other => other,
        },
        Command::Eval(args) => {
            let config = args.validate()?;
            dispatch(&config.net.clone(), EvalJob(&config))
        }
        Command::Infer(args) => {
            let config = args.validate()?;
            dispatch(&config.net.clone(), InferJob(&config))
        }
        Command::Quantize(args) => {
            let config = args.validate()?;
            models::with_int8_net(&config.net.clone(), QuantizeJob(&config)).unwrap_or_else(|| {
                Err(CliError::InvalidArg(format!(
                    "net {:?} has no int8 form; quantize one of: {}",
                    config.net,
                    models::INT8_NETS.join(", ")
                )))
            })
        }
        Command::Summary(args) => match args.name {
            Some(name) => dispatch(&name, SummaryJob),
            None => list_nets(),
        },
    }
}

/// Runs `job` with the net registered as `name`.
fn dispatch<J: NetVisitor<Output = Result<(), CliError>>>(name: &str, job: J) -> Result<(), CliError> {
    models::with_net(name, job).unwrap_or_else(|| {
        let names: Vec<&str> = NETS.iter().map(|n| n.name).collect();
        Err(CliError::InvalidArg(format!(
            "unknown net {name:?}; the nets are: {}",
            names.join(", ")
        )))
    })
}

struct EvalJob<'a>(&'a EvalConfig);

impl NetVisitor for EvalJob<'_> {
    type Output = Result<(), CliError>;
    fn visit<N: Network>(self) -> Self::Output {
        eval::<N>(self.0)
    }
}

struct InferJob<'a>(&'a InferConfig);

impl NetVisitor for InferJob<'_> {
    type Output = Result<(), CliError>;
    fn visit<N: Network>(self) -> Self::Output {
        infer::<N>(self.0)
    }
}

struct QuantizeJob<'a>(&'a args::QuantizeConfig);

impl models::Int8Visitor for QuantizeJob<'_> {
    type Output = Result<(), CliError>;
    fn visit<N: Network, Q: cnn_runtime::int8::Int8Network>(self) -> Self::Output {
        quantize::command::<N, Q>(self.0)
    }
}

struct SummaryJob;

impl NetVisitor for SummaryJob {
    type Output = Result<(), CliError>;
    fn visit<N: Network>(self) -> Self::Output {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = cnn_runtime::network::write_summary::<N, _>(&mut text);
        write_stdout(&text)
    }
}

/// Writes `text` to stdout, reporting failure (a closed pipe included).
fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

/// `cnn summary` without a name: one line per net of the registry.
/// The next lines give the training defaults: the net's recipe, and its
/// recipe for the embedded sample.
fn list_nets() -> Result<(), CliError> {
    let width = NETS.iter().map(|n| n.name.len()).max().unwrap_or(0);
    let type_width = NETS.iter().map(|n| n.type_name.len()).max().unwrap_or(0);
    let mut text = String::from("nets (cnn summary NAME for the layer table):\n");
    for net in NETS {
        text.push_str(&format!(
            "  {:<width$}  {:<type_width$}  {}\n  {:<width$}  {:<type_width$}  train defaults: {}\n  \
             {:<width$}  {:<type_width$}  on the sample: {}\n",
            net.name, net.type_name, net.about, "", "", net.recipe, "", "", net.sample_recipe
        ));
    }
    write_stdout(&text)
}

/// `cnn eval`: test accuracy of saved weights, overall and per class.
fn eval<N: Network>(config: &EvalConfig) -> Result<(), CliError> {
    cnn_runtime::train::set_threads(config.threads);
    let net = train::initial_net::<N>(0, Some(&config.weights))?;
    let source = Source::choose(config.data.as_deref());
    let data = dataset::load(&source, false, None, config.limit_test)?;
    say!("{}", data.description);
    train::check_dataset::<N>(&data.test, &source, Split::Test)?;
    say!(
        "net: {} ({} parameters), weights {}",
        N::NAME,
        thousands(N::PARAM_COUNT),
        config.weights.display()
    );
    let evaluation = Evaluation::of(&*net, &data.test);
    write_stdout(&evaluation.per_class_report())
}

/// `cnn infer`: the predicted class of every image of an IDX file.
fn infer<N: Network>(config: &InferConfig) -> Result<(), CliError> {
    cnn_runtime::train::set_threads(config.threads);
    let net = train::initial_net::<N>(0, Some(&config.weights))?;
    let (pixels, rows, cols) = data::read_idx_images(&config.images)?;
    train::check_fit::<N>(rows, cols, &config.images.display().to_string())?;
    let images: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let predicted = cnn_runtime::train::predict(&*net, &images);
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (i, &class) in predicted.iter().enumerate() {
        writeln!(out, "{i} {class} {}", class_name(class)).map_err(CliError::Stdout)?;
    }
    out.flush().map_err(CliError::Stdout)
}
