//! The `strata` binary: parse the command line, set up logging, run, map errors to exit codes.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = strata::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // deltalake warns on every MERGE that a metric is missing (it derives it), and on
            // every write of a binary column (a classifier's model artifact) that it keeps no
            // statistics for it; both are noise for users.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                EnvFilter::new(
                    "warn,deltalake_core::operations::merge=error,\
                     deltalake_core::writer::stats=error",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(strata::cli::run(cli, &env)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", strata::error::error_chain(&e));
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}
