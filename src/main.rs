//! The `strata` binary. Everything, logging and exit codes included, is in [`strata::cli::main`].

fn main() -> std::process::ExitCode {
    strata::cli::main()
}
