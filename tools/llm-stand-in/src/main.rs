//! `llm-stand-in --listen ADDR`: serves the stand-in provider until interrupted.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: llm-stand-in --listen ADDR (e.g. 127.0.0.1:0 for a free port)";

fn listen_addr(mut args: impl Iterator<Item = String>) -> Result<SocketAddr, String> {
    let mut listen = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => match other.strip_prefix("--listen=") {
                Some(v) => listen = Some(v.to_owned()),
                None => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            },
        }
    }
    let listen = listen.unwrap_or_else(|| "127.0.0.1:0".to_owned());
    listen
        .parse()
        .map_err(|e| format!("--listen {listen:?}: {e}\n{USAGE}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = match listen_addr(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let running = match custos_llm_stand_in::start(addr).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("llm-stand-in: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Scripts read this line to learn the port when they asked for port 0.
    println!("listening on {}", running.addr);
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
