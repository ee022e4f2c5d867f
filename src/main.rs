//! Entry point: parse the command line, run the command, map its outcome to an exit code
//! (0 ok, 1 a check failed, 2 usage or scenario error, 3 could not proceed, 130 interrupted).

use std::process::ExitCode;

use clap::Parser;

use pushbench::cli::Cli;

fn main() -> ExitCode {
    // Every command may hold many sockets; children inherit the raised limit.
    pushbench::websocket::model::raise_open_files_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    ExitCode::from(pushbench::commands::execute(cli.command).exit_code())
}
