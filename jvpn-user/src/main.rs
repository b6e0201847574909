//! The `jvpn` binary: parse the command line, run the command, and turn any failure into one line
//! on standard error and a non-zero exit code.
#![deny(unsafe_code)]

use jvpn_user::cli::{self, control_cmd, keygen, preflight, CliError, Command, Invocation};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let result = match cli::parse_args(std::env::args_os()) {
        Ok(Invocation::Print(text)) => {
            print!("{text}");
            Ok(())
        }
        Ok(Invocation::Run(command)) => run(command),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // If standard error itself is gone there is nowhere left to report to.
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                cli::one_line(&e.to_string())
            );
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Gateway(options) => {
            preflight::gateway(&options)?;
            jvpn_user::service::drop_capabilities_when_serving();
            let runtime = cli::daemon_runtime()?;
            cli::run_on_workers(
                &runtime,
                cli::gateway_cmd::run(options, cli::shutdown_signal()),
            )
        }
        Command::Control(invocation) => control_cmd::execute(invocation),
        Command::Detach { iface } => {
            if !preflight::is_root() {
                return Err(CliError::NotRoot {
                    command: "detach",
                    what: "the BPF filesystem",
                });
            }
            let detach = jvpn_user::dataplane::Dataplane::adopt(&iface).and_then(|d| d.detach());
            detach
                .map_err(|e| CliError::Gateway(jvpn_user::gateway::GatewayError::Dataplane(e)))?;
            println!("detached jvpn_xdp from {iface} and removed its pins");
            Ok(())
        }
        Command::Keygen { path, psk } => keygen::execute(&path, psk),
        Command::Client(command) => cli::client_cmd::execute(command),
    }
}
