//! `cargo run --example disclosure [FILE]`: print the public disclosure for a policy.

use std::process::ExitCode;

use custos_policy::Policy;

fn main() -> ExitCode {
    let policy = match std::env::args().nth(1) {
        Some(path) => match Policy::load(std::path::Path::new(&path)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        None => Policy::builtin(),
    };
    print!("{}", policy.render_disclosure());
    ExitCode::SUCCESS
}
