//! Prints the findings for each line of stdin: `echo "call 415-555-2671" | cargo run --example scan`.

use std::io::BufRead;

fn main() {
    let scanner = custos_pii::Scanner::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        for f in scanner.scan(&line) {
            let value = f.value(&line).unwrap_or("");
            println!(
                "{:<18} {:>4}..{:<4} {:.2} {:<16} {value}",
                f.entity.as_str(),
                f.start,
                f.end,
                f.score,
                f.recognizer
            );
        }
    }
}
