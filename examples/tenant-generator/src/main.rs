//! `cargo run -p brokkr-example-tenant-generator -- --help`: see the library docs.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = brokkr_example_tenant_generator::cli::Cli::parse();
    match brokkr_example_tenant_generator::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", brokkr_server::error::ErrorChain(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
