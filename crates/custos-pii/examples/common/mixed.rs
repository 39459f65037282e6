//! Deterministic generator of mixed text for benchmarks: ordinary prose and log lines, with about
//! 5% of lines carrying PII. Values are synthesized here (valid checksums), not taken from any
//! evaluation data set.

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'0' + self.below(10) as u8) as char)
            .collect()
    }
}

const PROSE: &[&str] = &[
    "The deployment finished without errors and the dashboards look healthy again.",
    "We should revisit the caching strategy before the next quarterly planning meeting.",
    "Please review the attached draft and leave comments by the end of the week.",
    "The build pipeline now runs integration tests in parallel across four workers.",
    "Customers reported slow page loads during the afternoon peak on Tuesday.",
    "INFO request completed status=200 duration_ms=41 route=/api/v2/items",
    "WARN retrying upstream call attempt=2 backoff_ms=250 service=inventory",
    "The committee agreed to postpone the vote until more data is available.",
    "Our onboarding guide explains how to configure the local development environment.",
    "Version 4.2.0 adds support for streaming responses and fixes two memory leaks.",
    "Remember to rotate credentials regularly and store them in the secrets manager.",
    "The warehouse processed 12,450 orders last month, up 8% from the previous month.",
    "DEBUG cache hit ratio=0.93 evictions=120 shard=7 region=us-east",
    "Thanks for the quick turnaround on the design review, it really helped the team.",
    "Section 3 describes the retention schedule and the archival tiers in detail.",
    "The new dashboard groups incidents by severity, owner and time to resolution.",
];

const FIRST: &[&str] = &[
    "Laura", "Marcus", "Aisha", "Tomasz", "Keiko", "Daniel", "Sofia", "Rahul", "Grace", "Owen",
];
const LAST: &[&str] = &[
    "Bennett",
    "Okafor",
    "Lindqvist",
    "Moreno",
    "Hartmann",
    "Nakamura",
    "Fitzgerald",
    "Kowalski",
    "Rahman",
    "Delgado",
];

fn luhn_complete(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut body = prefix.to_string();
    body.push_str(&rng.digits(len - prefix.len() - 1));
    for d in 0..10u8 {
        let cand = format!("{body}{d}");
        let sum: u32 = cand
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, c)| {
                let mut x = (c - b'0') as u32;
                if i % 2 == 1 {
                    x *= 2;
                    if x > 9 {
                        x -= 9;
                    }
                }
                x
            })
            .sum();
        if sum % 10 == 0 {
            return cand;
        }
    }
    unreachable!("one check digit always completes a Luhn number")
}

fn pii_line(rng: &mut Rng) -> String {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    match rng.below(8) {
        0 => format!(
            "Contact {first} {last} at {}.{}@example.com for the renewal.",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        1 => format!(
            "Customer {first} {last} called from ({}) 555-{} about the invoice.",
            200 + rng.below(700),
            rng.digits(4)
        ),
        2 => {
            let card = luhn_complete(rng, "4", 16);
            format!(
                "Payment with card {} {} {} {} was declined.",
                &card[..4],
                &card[4..8],
                &card[8..12],
                &card[12..]
            )
        }
        3 => format!(
            "Employee SSN {}-{}-{} was updated by HR.",
            100 + rng.below(500),
            10 + rng.below(89),
            1000 + rng.below(8999)
        ),
        4 => format!(
            "Login from {}.{}.{}.{} for user {}.",
            1 + rng.below(222),
            rng.below(255),
            rng.below(255),
            1 + rng.below(254),
            first.to_lowercase()
        ),
        5 => format!(
            "Ship to {} Maple Avenue, Portland, OR 97205 attn {first} {last}.",
            1 + rng.below(9999)
        ),
        6 => "Wire the refund to IBAN DE89 3704 0044 0532 0130 00 today.".to_string(),
        _ => format!(
            "{first} {last} asked to update the phone to +44 20 7946 {}.",
            rng.digits(4)
        ),
    }
}

/// About `bytes` of text, newline-separated, ~5% of lines with PII.
pub fn mixed_text(bytes: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(bytes + 200);
    while out.len() < bytes {
        if rng.below(20) == 0 {
            out.push_str(&pii_line(&mut rng));
        } else {
            out.push_str(rng.pick(PROSE));
        }
        out.push('\n');
    }
    out
}
