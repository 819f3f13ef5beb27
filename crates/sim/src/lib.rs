//! The governor simulator: runs one scenario of simulated IMAP clients
//! under several admission policies, with the same seed and the same
//! client behaviour, and reports how each policy served each class.
//!
//! Code map:
//! - [`scenario`] reads the scenario file.
//! - [`behaviour`] is what each kind of client does.
//! - [`policies`] holds the four baselines and the adapter around
//!   [`roost_governor::Governor`], behind one trait.
//! - [`engine`] runs the discrete-event simulation in virtual time.
//! - [`report`] computes and prints the results; [`plot`] draws them.

pub mod behaviour;
pub mod engine;
pub mod plot;
pub mod policies;
pub mod report;
pub mod scenario;

use std::path::PathBuf;

use anyhow::Context as _;

pub use engine::{PolicyRun, simulate};
pub use policies::PolicyKind;
pub use report::{ClassReport, PolicyReport, Report};
pub use scenario::{Scenario, load_scenario, parse_scenario};

/// Options of a simulation run, as the `roost simulate` command takes them.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// Policies to run, comma-separated; all five when not given.
    #[arg(long, value_delimiter = ',')]
    pub policies: Option<Vec<String>>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw sessions held over time, per policy, into this PNG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Seed for the random draws, in place of the scenario's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// TrueType font for the plot's text.
    #[arg(long, default_value = plot::DEFAULT_FONT)]
    pub font: Option<PathBuf>,
}

/// Why a simulation run failed.
#[derive(Debug)]
pub enum SimulateError {
    /// The options or the scenario file are invalid; nothing ran.
    Invalid(String),
    /// A file could not be read or written, or a run failed.
    Failed(anyhow::Error),
}

impl std::fmt::Display for SimulateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimulateError::Invalid(message) => f.write_str(message),
            SimulateError::Failed(err) => write!(f, "{err:#}"),
        }
    }
}

impl From<anyhow::Error> for SimulateError {
    fn from(err: anyhow::Error) -> Self {
        SimulateError::Failed(err)
    }
}

/// Runs the scenario under the chosen policies, writes the JSON and the
/// plot when asked, and returns the table to print.
pub fn run(args: &SimulateArgs) -> Result<String, SimulateError> {
    let kinds = match &args.policies {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|name| PolicyKind::from_name(name.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SimulateError::Invalid)?,
        _ => PolicyKind::ALL.to_vec(),
    };
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("{}: cannot read the file", args.scenario.display()))?;
    let mut scenario =
        parse_scenario(&text, &args.scenario.display().to_string()).map_err(SimulateError::Invalid)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    // Check the font before spending time on the runs.
    let font = args.font.clone().unwrap_or_else(|| PathBuf::from(plot::DEFAULT_FONT));
    if args.plot.is_some() && !font.is_file() {
        return Err(SimulateError::Invalid(format!(
            "font file {} not found; install the Debian package fonts-dejavu-core or pass --font with a .ttf file",
            font.display()
        )));
    }

    let (report, runs) = simulate_all(&scenario, &kinds).map_err(anyhow::Error::msg)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report as JSON")?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write the JSON report {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::write_plot(path, &font, &scenario.name, scenario.seed, scenario.collapse_factor, &runs)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(report.table())
}

/// Runs every policy in `kinds` over `scenario`, one after another.
pub fn simulate_all(scenario: &Scenario, kinds: &[PolicyKind]) -> Result<(Report, Vec<PolicyRun>), String> {
    let mut runs = Vec::with_capacity(kinds.len());
    for kind in kinds {
        runs.push(simulate(scenario, *kind)?);
    }
    let report = Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        policies: runs.iter().map(|run| run.report.clone()).collect(),
    };
    Ok((report, runs))
}
