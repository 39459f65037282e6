//! `custos dsr ...`: data subject requests from the command line: list, show and extend
//! requests, export a subject's data, erase a subject or a CSV of subjects (see
//! [`crate::dsr_bulk`]).
//!
//! The CLI acts as the system principal: whoever runs it holds the deployment's keys already.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{ArgGroup, Args, Subcommand};
use custos_core::{Caller, Custos, Principal, RequestExtension, RequestQuery, RequestView};
use custos_store::{RequestKind, RequestStatus};

use crate::cli::Global;
use crate::{deploy, Failure};

/// The data subject request commands.
#[derive(Debug, Subcommand)]
pub enum DsrCommand {
    /// List an org's requests sorted by due time, earliest first.
    List(ListArgs),
    /// Show one request.
    Show(ShowArgs),
    /// Extend an open request's deadline (once, at most `[deletion] erasure_extension_max`).
    Extend(ExtendArgs),
    /// Write everything held about a subject to a file (0600; written atomically).
    Export(ExportArgs),
    /// Erase a subject, or every subject of a CSV (resumable), writing certificates of
    /// deletion.
    Erase(EraseArgs),
}

/// `custos dsr list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The org id.
    #[arg(long)]
    pub org: String,
    /// Only requests of this type: access, portability or erasure.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_kind)]
    pub kind: Option<RequestKind>,
    /// Only requests in this status: received, in_progress, completed, partially_completed
    /// or rejected.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<RequestStatus>,
    /// Only open requests past their due time.
    #[arg(long)]
    pub overdue: bool,
    /// One JSON object per line (the API's request view) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `custos dsr show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The org id.
    #[arg(long)]
    pub org: String,
    /// The request id.
    pub id: String,
    /// Print the request as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custos dsr extend` options.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The org id.
    #[arg(long)]
    pub org: String,
    /// The request id.
    pub id: String,
    /// By how much, as a policy duration (14d, 1mo, 2mo).
    #[arg(long)]
    pub by: String,
    /// Why (told to the person; kept on the request).
    #[arg(long)]
    pub reason: String,
}

/// `custos dsr export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The org id.
    #[arg(long)]
    pub org: String,
    /// The subject's id, as records name it.
    #[arg(long)]
    pub subject: String,
    /// json, csv or pdf.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// The file to write (replaced atomically; mode 0600, it is personal data).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `custos dsr erase` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["subject", "csv"])))]
pub struct EraseArgs {
    /// The org id.
    #[arg(long)]
    pub org: String,
    /// The subject to erase.
    #[arg(long)]
    pub subject: Option<String>,
    /// A CSV of subject ids (one column, optional `subject` header): one resumable bulk job.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// With --csv: the results file, one row per finished subject (default FILE.results.csv;
    /// `<results>.started` beside it records when the job began). A rerun skips the subjects
    /// it lists as done and never erases a subject twice.
    #[arg(long, value_name = "FILE", requires = "csv")]
    pub results: Option<PathBuf>,
    /// With --subject: the certificate file (default ./certificate-<request id>.json). With
    /// --csv: the directory of certificates (default FILE.certificates/ beside the results).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

fn parse_kind(value: &str) -> Result<RequestKind, String> {
    RequestKind::parse(value).map_err(|_| "expected access, portability or erasure".to_string())
}

fn parse_status(value: &str) -> Result<RequestStatus, String> {
    RequestStatus::parse(value).map_err(|_| {
        "expected received, in_progress, completed, partially_completed or rejected".to_string()
    })
}

/// The caller every dsr command acts as.
pub(crate) fn system() -> Caller {
    Caller::new(Principal::System)
}

/// Opens the deployment with its signing key attached: erasures sign checkpoints and
/// certificates.
async fn open(global: &Global) -> Result<Arc<Custos>, Failure> {
    let deployment = deploy::open(global).await?;
    let custos = Arc::try_unwrap(deployment.custos)
        .map_err(|_| Failure::Failed("services are shared before start".into()))?
        .with_audit_signer(deployment.signer.clone());
    Ok(Arc::new(custos))
}

/// Runs one dsr command.
pub async fn run(global: &Global, cmd: DsrCommand) -> Result<(), Failure> {
    let custos = open(global).await?;
    match cmd {
        DsrCommand::List(args) => list(&custos, args).await,
        DsrCommand::Show(args) => show(&custos, args).await,
        DsrCommand::Extend(args) => extend(&custos, args).await,
        DsrCommand::Export(args) => export(&custos, args).await,
        DsrCommand::Erase(args) => match (&args.subject, &args.csv) {
            (Some(subject), _) => erase_one(&custos, &args.org, subject, args.out).await,
            (None, Some(csv)) => {
                let job = crate::dsr_bulk::BulkJob::new(csv, args.results, args.out);
                let vault = deploy::open_key_vault(global).await?;
                crate::dsr_bulk::run(&custos, &vault, &args.org, &job).await
            }
            (None, None) => Err(Failure::BadInput(
                "dsr erase: give --subject or --csv".into(),
            )),
        },
    }
}

/// A time to the second, for tables.
fn short_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn json_line<T: serde::Serialize>(out: &mut String, value: &T) -> Result<(), Failure> {
    out.push_str(&serde_json::to_string(value).map_err(|e| Failure::Failed(e.to_string()))?);
    out.push('\n');
    Ok(())
}

/// The table `dsr list` prints: one row per request, in the order given.
pub fn render_table(requests: &[RequestView]) -> String {
    let mut out = format!(
        "{:<36}  {:<11}  {:<19}  {:<20}  {:<7}  {}\n",
        "ID", "TYPE", "STATUS", "DUE", "OVERDUE", "FILED BY"
    );
    for r in requests {
        out.push_str(&format!(
            "{:<36}  {:<11}  {:<19}  {:<20}  {:<7}  {}\n",
            r.id,
            r.kind.as_str(),
            r.status.as_str(),
            short_time(r.due_at),
            if r.overdue { "yes" } else { "no" },
            r.filed_by
        ));
    }
    out
}

async fn list(custos: &Custos, args: ListArgs) -> Result<(), Failure> {
    let caller = system();
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = custos
            .list_requests(
                &caller,
                &args.org,
                RequestQuery {
                    kind: args.kind,
                    status: args.status,
                    overdue: args.overdue,
                    cursor,
                    limit: Some(1000),
                },
            )
            .await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut out = String::new();
    if args.json {
        for r in &all {
            json_line(&mut out, r)?;
        }
    } else if all.is_empty() {
        out.push_str("no requests\n");
    } else {
        out.push_str(&render_table(&all));
    }
    print_out(&out)
}

/// Writes to standard output, failing (rather than panicking) on a closed pipe.
fn print_out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Failed(format!("writing to standard output: {e}")))
}

/// A request as `key: value` lines, for people.
pub fn render_request(r: &RequestView) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<17} {value}\n"));
    field("id:", r.id.clone());
    field("type:", r.kind.to_string());
    field("status:", r.status.to_string());
    if let Some(reason) = &r.status_reason {
        field("status reason:", reason.clone());
    }
    field("subject ref:", r.subject_ref.clone());
    field("filed by:", r.filed_by.clone());
    field("received:", r.received_at.to_string());
    field(
        "due:",
        format!("{}{}", r.due_at, if r.overdue { " (overdue)" } else { "" }),
    );
    if let Some(at) = r.extended_at {
        field(
            "extended:",
            format!("{at}: {}", r.extension_reason.as_deref().unwrap_or("")),
        );
    }
    if let Some(at) = r.completed_at {
        field("completed:", at.to_string());
    }
    if !r.certificates.is_empty() {
        field("certificates:", r.certificates.join(", "));
    }
    out
}

async fn show(custos: &Custos, args: ShowArgs) -> Result<(), Failure> {
    let view = custos.get_request(&system(), &args.org, &args.id).await?;
    if args.json {
        let mut out = String::new();
        json_line(&mut out, &view)?;
        print_out(&out)
    } else {
        print_out(&render_request(&view))
    }
}

async fn extend(custos: &Custos, args: ExtendArgs) -> Result<(), Failure> {
    let view = custos
        .extend_request(
            &system(),
            &args.org,
            &args.id,
            RequestExtension {
                by: args.by,
                reason: args.reason,
            },
        )
        .await?;
    print_out(&format!(
        "extended request {}: now due {}\n",
        view.id, view.due_at
    ))
}

/// A temporary file beside `path` (same directory, so the final rename is atomic), created
/// 0600 by `tempfile`.
pub(crate) fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, Failure> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".custos-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Failure::BadInput(format!("{}: cannot write here: {e}", path.display())))
}

/// Makes `tmp` durable and renames it over `path`.
pub(crate) fn commit(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), Failure> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
    tmp.persist(path)
        .map_err(|e| Failure::Failed(format!("{}: {}", path.display(), e.error)))?;
    Ok(())
}

/// Writes `text` to `path` atomically (0600).
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), Failure> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(text.as_bytes())
        .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
    commit(tmp, path)
}

async fn export(custos: &Custos, args: ExportArgs) -> Result<(), Failure> {
    let format = custos_core::export_format(&args.format).map_err(|_| {
        Failure::BadInput(format!(
            "--format {}: must be json, csv or pdf",
            args.format
        ))
    })?;
    let tmp = temp_beside(&args.out)?;
    let mut writer = std::io::BufWriter::new(tmp);
    // On failure the temporary file is dropped, which removes it: no half export is left.
    let records = custos
        .export_subject(&system(), &args.org, &args.subject, format, &mut writer)
        .await?;
    let tmp = writer
        .into_inner()
        .map_err(|e| Failure::Failed(format!("{}: {}", args.out.display(), e.error())))?;
    commit(tmp, &args.out)?;
    print_out(&format!(
        "{}\nwrote {records} record(s) as {}\n",
        args.out.display(),
        format.name()
    ))
}

/// The latest certificate of `request`, written to `path` atomically.
pub(crate) async fn save_certificate(
    custos: &Custos,
    org: &str,
    request: &str,
    path: &Path,
) -> Result<custos_cert::Certificate, Failure> {
    let cert = custos.request_certificate(&system(), org, request).await?;
    write_atomic(path, &cert.to_json_pretty())?;
    Ok(cert)
}

/// Fails unless the erasure ran to its end (completed, or partially completed under holds).
pub(crate) fn require_finished(view: &RequestView) -> Result<(), Failure> {
    match view.status {
        RequestStatus::Completed | RequestStatus::PartiallyCompleted => Ok(()),
        other => Err(Failure::Failed(format!(
            "erasure request {} stopped as {other}{}; run the command again to resume it",
            view.id,
            view.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ))),
    }
}

async fn erase_one(
    custos: &Custos,
    org: &str,
    subject: &str,
    out: Option<PathBuf>,
) -> Result<(), Failure> {
    let view = custos.erase_subject(&system(), org, subject).await?;
    require_finished(&view)?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("certificate-{}.json", view.id)));
    let cert = save_certificate(custos, org, &view.id, &path).await?;
    let mut text = format!("{}\n", path.display());
    if view.status == RequestStatus::PartiallyCompleted {
        text.push_str(&format!(
            "partially completed: {}\n",
            view.status_reason
                .as_deref()
                .unwrap_or("legal holds keep some records")
        ));
    }
    text.push_str(&custos_cert::render_text(&cert));
    print_out(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, overdue: bool) -> RequestView {
        RequestView {
            id: id.into(),
            kind: RequestKind::Erasure,
            status: RequestStatus::Received,
            subject: Some("alice".into()),
            subject_ref: "ab12".into(),
            filed_by: "system".into(),
            received_at: "2027-01-31T10:00:00Z".parse().unwrap(),
            due_at: "2027-02-28T10:00:00.123Z".parse().unwrap(),
            overdue,
            extended_at: None,
            extension_reason: None,
            status_reason: None,
            completed_at: None,
            certificates: vec![],
        }
    }

    #[test]
    fn the_table_has_one_row_per_request_without_subjects() {
        let table = render_table(&[view("r1", true), view("r2", false)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID"));
        assert!(lines[1].starts_with("r1 "), "{table}");
        assert!(lines[1].contains("2027-02-28T10:00:00Z"), "{table}");
        assert!(lines[1].contains(" yes "), "{table}");
        assert!(lines[2].contains(" no "), "{table}");
        assert!(!table.contains("alice"), "no subject ids in the table");
    }

    #[test]
    fn show_names_the_extension_and_status_reason() {
        let mut r = view("r1", false);
        r.extended_at = Some("2027-02-01T00:00:00Z".parse().unwrap());
        r.extension_reason = Some("complex request".into());
        r.status_reason = Some("hold h1 keeps 2 records".into());
        let text = render_request(&r);
        assert!(text.contains("complex request"), "{text}");
        assert!(text.contains("hold h1 keeps 2 records"), "{text}");
    }

    #[test]
    fn atomic_writes_replace_the_file_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn bad_types_and_statuses_are_named() {
        assert_eq!(parse_kind("erasure").unwrap(), RequestKind::Erasure);
        assert!(parse_kind("delete").unwrap_err().contains("erasure"));
        assert_eq!(
            parse_status("partially_completed").unwrap(),
            RequestStatus::PartiallyCompleted
        );
        assert!(parse_status("done").is_err());
    }
}
