//! Runs a governor simulation scenario and prints the comparison table.
//! The same options as `roost simulate`; see `roost-simulate --help`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "roost-simulate", about = "Compare admission policies on a simulated IMAP client population")]
struct Cli {
    #[command(flatten)]
    args: roost_sim::SimulateArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match roost_sim::run(&cli.args) {
        Ok(table) => {
            print!("{table}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("roost-simulate: {err}");
            match err {
                roost_sim::SimulateError::Invalid(_) => std::process::ExitCode::from(2),
                roost_sim::SimulateError::Failed(_) => std::process::ExitCode::FAILURE,
            }
        }
    }
}
