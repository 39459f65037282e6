//! `cargo run --example policy_check -- FILE`: what `custos policy check` prints.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: policy_check FILE");
        return ExitCode::from(2);
    };
    match custos_policy::Policy::load(Path::new(&path)) {
        Ok(_) => {
            println!("{path}: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
