//! `custos sweep`: one pass of the lifecycle engine, with progress and a summary.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use custos_core::{ActionKind, SweepOptions};

use crate::cli::Global;
use crate::{deploy, Failure};

/// Options of `custos sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: forecast what will be due at TIME (RFC 3339 such as
    /// 2027-01-01T00:00:00Z, or a date, meaning midnight UTC).
    #[arg(long, value_name = "TIME", requires = "dry_run")]
    pub as_of: Option<String>,
    /// One JSON line per action: {"org","record","category","action","due"}; the summary
    /// goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Seconds this sweep owns the records it claims; if it is killed, a later sweep takes
    /// them over after this.
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease: u64,
    /// Sweep nothing; list records still stored past the policy's removal deadlines
    /// (`expired_within`, `hard_delete_within`, `account_termination_within`), per org. Exit 1
    /// if any is overdue and not held.
    #[arg(long, conflicts_with_all = ["dry_run", "as_of"])]
    pub report: bool,
}

/// `--report`: the SLA report over all orgs.
async fn report(global: &Global, json: bool) -> Result<(), Failure> {
    let deployment = deploy::open(global).await?;
    let system = custos_core::Caller::new(custos_core::Principal::System);
    let overdue = deployment
        .custos
        .overdue(&system, None)
        .await
        .map_err(|e| Failure::Failed(format!("report: {e}")))?;
    let mut per_org: BTreeMap<(&str, &str, bool), (u64, jiff::Timestamp)> = BTreeMap::new();
    let mut out = String::new();
    for o in &overdue {
        if json {
            out.push_str(&serde_json::to_string(o).expect("reports serialize"));
            out.push('\n');
        }
        let kind = match o.kind {
            custos_core::SlaKind::Expired => "expired_within",
            custos_core::SlaKind::HardDelete => "hard_delete_within",
            custos_core::SlaKind::AccountTermination => "account_termination_within",
            custos_core::SlaKind::SubjectRequest => "erasure_request_within (open requests)",
        };
        let entry = per_org
            .entry((o.org.as_str(), kind, o.held))
            .or_insert((0, o.deadline));
        entry.0 += 1;
        entry.1 = entry.1.min(o.deadline);
    }
    let mut summary = format!(
        "SLA report: {} records or requests past their deadline\n",
        overdue.len()
    );
    for ((org, kind, held), (n, oldest)) in &per_org {
        summary.push_str(&format!(
            "  org {org}: {n} over {kind}{}, oldest deadline {oldest}\n",
            if *held { " (held by a legal hold)" } else { "" }
        ));
    }
    print!("{out}");
    if json {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    if overdue.iter().any(|o| !o.held) {
        return Err(Failure::Failed(
            "records or requests are overdue; run `custos sweep` and answer the requests \
             (`custos dsr list`)"
                .into(),
        ));
    }
    Ok(())
}

/// Parses `--as-of`: a timestamp with offset, or a civil date taken as midnight UTC.
pub fn parse_as_of(value: &str) -> Result<jiff::Timestamp, Failure> {
    if let Ok(t) = value.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    value
        .parse::<jiff::civil::Date>()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp())
        .map_err(|_| {
            Failure::BadInput(format!(
                "--as-of {value:?}: expected an RFC 3339 time such as 2027-01-01T00:00:00Z or a date such as 2027-01-01"
            ))
        })
}

/// Runs one sweep pass.
pub async fn run(global: &Global, args: SweepArgs) -> Result<(), Failure> {
    if args.report {
        return report(global, args.json).await;
    }
    let as_of = args.as_of.as_deref().map(parse_as_of).transpose()?;
    let deployment = deploy::open(global).await?;
    let opts = SweepOptions {
        dry_run: args.dry_run,
        as_of,
        lease: jiff::SignedDuration::from_secs(args.lease as i64),
        ..SweepOptions::default()
    };
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .expect("static template"),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut done = 0u64;
    let mut per_category: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut stdout = std::io::stdout();
    let mut write_error = None;
    let summary = deployment
        .custos
        .sweep(&opts, &mut |action| {
            done += 1;
            if done.is_multiple_of(100) {
                progress.set_message(format!("{done} actions"));
            }
            let name = match action.action {
                ActionKind::Archive => "archive",
                ActionKind::Purge => "purge",
                ActionKind::Held => "held",
            };
            *per_category
                .entry((action.category.clone(), name))
                .or_default() += 1;
            if args.json && write_error.is_none() {
                let line = serde_json::to_string(action).expect("actions serialize");
                if let Err(e) = writeln!(stdout, "{line}") {
                    write_error = Some(e);
                }
            }
        })
        .await
        .map_err(|e| Failure::Failed(format!("sweep: {e}")))?;
    progress.finish_and_clear();
    if let Some(e) = write_error {
        return Err(Failure::Failed(format!("writing actions: {e}")));
    }
    let verb = if args.dry_run { "would" } else { "did" };
    let mut report = format!(
        "sweep{}: {verb} archive {}, purge {}; {} held by legal holds{}\n",
        match as_of {
            Some(t) => format!(" (forecast as of {t})"),
            None if args.dry_run => " (dry run)".to_string(),
            None => String::new(),
        },
        summary.archived,
        summary.purged,
        summary.held,
        if summary.raced > 0 {
            format!("; {} already changed by someone else", summary.raced)
        } else {
            String::new()
        }
    );
    if summary.terminated > 0 {
        report.push_str(&format!(
            "  {} org termination(s) completed: records purged, keys destroyed\n",
            summary.terminated
        ));
    }
    if summary.members_disabled > 0 {
        report.push_str(&format!(
            "  {} member(s) disabled: unused past the policy's inactive_member_after\n",
            summary.members_disabled
        ));
    }
    if summary.security_events_purged > 0 {
        report.push_str(&format!(
            "  {} deployment security event(s) deleted: past the security_logs retention\n",
            summary.security_events_purged
        ));
    }
    if summary.notifications_purged > 0 {
        report.push_str(&format!(
            "  {} notification(s) deleted: delivered or given up over 30 days ago\n",
            summary.notifications_purged
        ));
    }
    if summary.privacy_links_purged > 0 {
        report.push_str(&format!(
            "  {} used privacy-center link(s) forgotten: past their expiry\n",
            summary.privacy_links_purged
        ));
    }
    for ((category, action), n) in &per_category {
        report.push_str(&format!("  {action:<8} {n:>9}  {category}\n"));
    }
    if args.json {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    Ok(())
}
