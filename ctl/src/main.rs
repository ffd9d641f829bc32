//! The `minictl` binary: parse flags, run, print errors like kubectl, exit 0 or 1.

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MINICTL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Usage errors exit 1 like kubectl's (clap would use 2); --help and --version exit 0.
    let cli = match minictl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(minictl::run(cli));
    // Don't wait for background tasks (watch streams) once the verb is done.
    runtime.shutdown_background();
    match result {
        Ok(()) => {}
        Err(minictl::error::Error::Reported) => std::process::exit(1),
        Err(e) => {
            eprintln!("{}", minictl::error::render(&e));
            std::process::exit(1);
        }
    }
}
