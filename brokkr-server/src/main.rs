//! `brokkr-server`: parses the command line and hands it to [`brokkr_server::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = brokkr_server::cli::Cli::parse();
    match brokkr_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", brokkr_server::error::ErrorChain(&err));
            std::process::ExitCode::from(err.exit_code())
        }
    }
}
