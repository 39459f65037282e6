//! `custos dsr erase --csv FILE`: one resumable bulk erasure job.
//!
//! The job is its two files: the input CSV of subject ids and the results file, which gets
//! one row `subject,request,status,certificate,detail` per subject as it finishes, flushed
//! per row. A rerun with the same files skips the subjects the results file lists as done
//! (`completed` or `partially_completed`) and retries the `failed` ones;
//! `Custos::erase_subject` itself resumes a subject whose erasure was cut off part way.
//!
//! One gap is left between those two: a subject whose erasure finished (certificate stored)
//! but whose row was not yet written when the job was killed. Erasing it again would file a
//! second request, so the job records when it started (`<results>.started`) and a rerun looks
//! up the org's erasure requests received since then by keyed subject reference, taking over
//! a finished one instead. Killing the job at any point and starting it again therefore
//! erases each subject with exactly one request.
//!
//! The results file holds the operator's own input (subject ids) and error messages about
//! it; like everything this process creates it is private to its owner.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use custos_core::{Custos, RequestQuery};
use custos_crypto::KeyVault;
use custos_store::{RequestKind, RequestStatus};

use crate::dsr_cmd::{require_finished, save_certificate, system};
use crate::{deploy, Failure};

/// The header of a results file.
pub const RESULTS_HEADER: [&str; 5] = ["subject", "request", "status", "certificate", "detail"];
/// The `status` of a subject whose erasure failed in this run.
const FAILED: &str = "failed";
/// The `status` of a row repeating an earlier row's id (erased once, on that row).
const DUPLICATE: &str = "duplicate";

/// One subject row of the input CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRow {
    /// The 1-based line the row starts on.
    pub line: u64,
    /// The subject id, exactly as written.
    pub subject: String,
    /// What to do with it.
    pub kind: RowKind,
}

/// What a row of the input asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKind {
    /// Erase the subject.
    Erase,
    /// The same id as the row on this line: reported, not erased again.
    DuplicateOf(u64),
    /// The id has leading or trailing whitespace: refused, since trimming it would name a
    /// different subject than the one written (and erase the wrong person's data).
    Whitespace,
}

/// Where one bulk job reads and writes.
#[derive(Debug, Clone)]
pub struct BulkJob {
    /// The input CSV of subject ids.
    pub csv: PathBuf,
    /// The results file (default `<csv>.results.csv`).
    pub results: PathBuf,
    /// The directory of certificates (default `<csv file name>.certificates/` beside the
    /// results file).
    pub certificates: PathBuf,
}

impl BulkJob {
    /// The job of `csv`, with the defaults for what is not given.
    pub fn new(csv: &Path, results: Option<PathBuf>, certificates: Option<PathBuf>) -> Self {
        let with_suffix = |suffix: &str| {
            let mut name = csv.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let results = results.unwrap_or_else(|| with_suffix(".results.csv"));
        let certificates = certificates.unwrap_or_else(|| {
            let mut name = csv.file_name().unwrap_or(csv.as_os_str()).to_owned();
            name.push(".certificates");
            results
                .parent()
                .map_or_else(|| PathBuf::from(&name), |dir| dir.join(&name))
        });
        BulkJob {
            csv: csv.to_path_buf(),
            results,
            certificates,
        }
    }
}

/// One row of the results file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    /// The subject id, as the input names it.
    pub subject: String,
    /// The erasure request, when one was filed or resumed.
    pub request: String,
    /// `completed`, `partially_completed`, `failed` or `duplicate`.
    pub status: String,
    /// The certificate file, when one was written.
    pub certificate: String,
    /// What legal holds keep (partially completed), or the error (failed).
    pub detail: String,
}

impl ResultRow {
    fn fields(&self) -> [&str; 5] {
        [
            &self.subject,
            &self.request,
            &self.status,
            &self.certificate,
            &self.detail,
        ]
    }

    /// Whether this row ends the subject's part of the job.
    fn is_done(status: &str) -> bool {
        status == RequestStatus::Completed.as_str()
            || status == RequestStatus::PartiallyCompleted.as_str()
    }
}

/// The subject rows of an input CSV in order, without blank rows; a first row reading
/// `subject` is a header. Ids are taken exactly as written: one with leading or trailing
/// whitespace is marked for refusal, and a repeat is marked as a duplicate of its first line.
/// More than one non-empty column is bad input.
pub fn read_subjects(mut input: impl Read) -> Result<Vec<InputRow>, String> {
    // Read whole (a list of ids) so that a row's line can be counted past the blank lines the
    // csv reader skips: its position is where it started reading, before them.
    let mut text = Vec::new();
    input.read_to_end(&mut text).map_err(|e| e.to_string())?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_slice());
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut subjects = Vec::new();
    let mut first = true;
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let line = record.position().map_or(0, |p| {
            let skipped = text
                .get(p.byte() as usize..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .filter(|b| **b == b'\n')
                .count();
            p.line() + skipped as u64
        });
        let values: Vec<&str> = record.iter().filter(|v| !v.is_empty()).collect();
        let subject = match values.as_slice() {
            [] => continue,
            [one] => *one,
            more => {
                return Err(format!(
                    "line {line}: expected one column (the subject id), found {}",
                    more.len()
                ))
            }
        };
        let header = first && subject.trim().eq_ignore_ascii_case("subject");
        first = false;
        if header {
            continue;
        }
        let kind = if subject.trim() != subject {
            RowKind::Whitespace
        } else if let Some(&of) = seen.get(subject) {
            RowKind::DuplicateOf(of)
        } else {
            seen.insert(subject.to_string(), line);
            RowKind::Erase
        };
        subjects.push(InputRow {
            line,
            subject: subject.to_string(),
            kind,
        });
    }
    Ok(subjects)
}

/// What an existing results file says: the subjects done, and for failed subjects the
/// request they failed on, if any. A row cut short by a crash counts as not done.
pub fn read_results(
    input: impl Read,
) -> Result<(HashSet<String>, HashMap<String, String>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let header = reader.headers().map_err(|e| e.to_string())?.clone();
    if !header.is_empty() && header.iter().ne(RESULTS_HEADER) {
        return Err(format!(
            "not a results file of `custos dsr erase` (expected the header {})",
            RESULTS_HEADER.join(",")
        ));
    }
    let mut done = HashSet::new();
    let mut failed = HashMap::new();
    for record in reader.records() {
        // A crash can leave the last row half written; it is simply not done.
        let Ok(record) = record else { continue };
        let (Some(subject), Some(status)) = (record.get(0), record.get(2)) else {
            continue;
        };
        if ResultRow::is_done(status) {
            failed.remove(subject);
            done.insert(subject.to_string());
        } else if status == FAILED {
            let request = record.get(1).unwrap_or_default();
            if !request.is_empty() {
                failed.insert(subject.to_string(), request.to_string());
            }
        }
    }
    Ok((done, failed))
}

/// The results file, open for appending rows one at a time.
struct Results {
    writer: csv::Writer<std::fs::File>,
    path: PathBuf,
}

impl Results {
    /// Opens (creating with its header) the results file; a last row cut short by a crash
    /// is ended so the next row starts on its own line.
    fn open(path: &Path) -> Result<Self, Failure> {
        let err = |e: std::io::Error| Failure::Failed(format!("{}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::End(-1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
            }
        }
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        if len == 0 {
            writer
                .write_record(RESULTS_HEADER)
                .and_then(|()| writer.flush().map_err(Into::into))
                .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
        }
        Ok(Results {
            writer,
            path: path.to_path_buf(),
        })
    }

    /// Appends one row and flushes it to the file.
    fn append(&mut self, row: &ResultRow) -> Result<(), Failure> {
        self.writer
            .write_record(row.fields())
            .and_then(|()| self.writer.flush().map_err(Into::into))
            .map_err(|e| Failure::Failed(format!("{}: {e}", self.path.display())))
    }
}

/// Counts of one run, for the summary.
#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    partial: u64,
    failed: u64,
    duplicates: u64,
    skipped: u64,
}

/// Runs (or resumes) the bulk job.
pub async fn run(
    custos: &Custos,
    vault: &KeyVault,
    org: &str,
    job: &BulkJob,
) -> Result<(), Failure> {
    let input = std::fs::File::open(&job.csv)
        .map_err(|e| Failure::BadInput(format!("--csv {}: {e}", job.csv.display())))?;
    let rows = read_subjects(std::io::BufReader::new(input))
        .map_err(|e| Failure::BadInput(format!("--csv {}: {e}", job.csv.display())))?;
    let (done, mut known) = match std::fs::File::open(&job.results) {
        Ok(f) => read_results(std::io::BufReader::new(f))
            .map_err(|e| Failure::BadInput(format!("--results {}: {e}", job.results.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => {
            return Err(Failure::BadInput(format!(
                "--results {}: {e}",
                job.results.display()
            )))
        }
    };
    deploy::create_private_dir(&job.certificates)?;
    let (started, resumed) = job_start(job, custos.now())?;
    if resumed {
        let pending: Vec<&String> = rows
            .iter()
            .filter(|r| r.kind == RowKind::Erase && !done.contains(&r.subject))
            .map(|r| &r.subject)
            .collect();
        for (subject, request) in filed_since(custos, vault, org, started, &pending).await? {
            known.entry(subject).or_insert(request);
        }
    }
    let mut results = Results::open(&job.results)?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed} [{bar:30}] {pos}/{len} subjects {msg} (eta {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    for input in &rows {
        let subject = &input.subject;
        let row = match input.kind {
            RowKind::Erase if done.contains(subject) => {
                tally.skipped += 1;
                progress.inc(1);
                continue;
            }
            RowKind::Erase => erase_row(custos, org, subject, known.get(subject), job).await,
            RowKind::DuplicateOf(of) => ResultRow {
                subject: subject.clone(),
                request: String::new(),
                status: DUPLICATE.to_string(),
                certificate: String::new(),
                detail: format!("line {}: duplicate of line {of}", input.line),
            },
            RowKind::Whitespace => ResultRow {
                subject: subject.clone(),
                request: String::new(),
                status: FAILED.to_string(),
                certificate: String::new(),
                detail: format!(
                    "line {}: the subject id has leading or trailing whitespace; ids are taken \
                     exactly as given, so remove it (a subject stored with such an id is erased \
                     with `custos dsr erase --subject`)",
                    input.line
                ),
            },
        };
        match row.status.as_str() {
            s if s == RequestStatus::Completed.as_str() => tally.completed += 1,
            s if s == RequestStatus::PartiallyCompleted.as_str() => tally.partial += 1,
            DUPLICATE => tally.duplicates += 1,
            _ => tally.failed += 1,
        }
        results.append(&row)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!(
        "{} subject(s): {} completed, {} partially completed (legal holds), {} failed, {} duplicate(s); {} done in an earlier run\nresults: {}\ncertificates: {}",
        rows.iter()
            .filter(|r| !matches!(r.kind, RowKind::DuplicateOf(_)))
            .count(),
        tally.completed,
        tally.partial,
        tally.failed,
        tally.duplicates,
        tally.skipped,
        job.results.display(),
        job.certificates.display()
    );
    if tally.failed > 0 {
        return Err(Failure::Failed(format!(
            "{} subject(s) failed; their rows in {} say why; run the same command again to retry them",
            tally.failed,
            job.results.display()
        )));
    }
    Ok(())
}

/// When the job started, and whether it had started before this run: read from
/// `<results>.started`, or written there (atomically) now.
fn job_start(job: &BulkJob, now: jiff::Timestamp) -> Result<(jiff::Timestamp, bool), Failure> {
    let mut name = job.results.as_os_str().to_owned();
    name.push(".started");
    let marker = PathBuf::from(name);
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            text.trim().parse().map(|t| (t, true)).map_err(|e| {
                Failure::BadInput(format!("{}: not a start time: {e}", marker.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::dsr_cmd::write_atomic(&marker, &format!("{now}\n"))?;
            Ok((now, false))
        }
        Err(e) => Err(Failure::Failed(format!("{}: {e}", marker.display()))),
    }
}

/// The latest erasure request of each of `subjects` received since `started` (this job's
/// own, from a run killed before it wrote the subject's row), by keyed subject reference.
async fn filed_since(
    custos: &Custos,
    vault: &KeyVault,
    org: &str,
    started: jiff::Timestamp,
    subjects: &[&String],
) -> Result<HashMap<String, String>, Failure> {
    let mut by_ref = HashMap::with_capacity(subjects.len());
    for subject in subjects {
        // A subject the key store cannot reference fails on its own row, with the reason.
        if let Ok(r) = vault.subject_ref(org, subject).await {
            by_ref.insert(r, (*subject).clone());
        }
    }
    let mut found: HashMap<String, (jiff::Timestamp, String)> = HashMap::new();
    if by_ref.is_empty() {
        return Ok(HashMap::new());
    }
    let mut cursor = None;
    loop {
        let page = custos
            .list_requests(
                &system(),
                org,
                RequestQuery {
                    kind: Some(RequestKind::Erasure),
                    cursor,
                    limit: Some(1000),
                    ..RequestQuery::default()
                },
            )
            .await?;
        for r in page.items {
            let Some(subject) = by_ref.get(&r.subject_ref) else {
                continue;
            };
            if r.received_at < started {
                continue;
            }
            let entry = found
                .entry(subject.clone())
                .or_insert((r.received_at, r.id.clone()));
            if r.received_at > entry.0 {
                *entry = (r.received_at, r.id);
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(found.into_iter().map(|(s, (_, id))| (s, id)).collect())
}

/// Erases one subject and writes its certificate; never fails, a failure is a row. A subject
/// with a known request of this job (one that failed after the erasure ran, say, its
/// certificate could not be written, or one a killed run finished) is taken over when that
/// request is finished, rather than erased with a second request.
async fn erase_row(
    custos: &Custos,
    org: &str,
    subject: &str,
    known: Option<&String>,
    job: &BulkJob,
) -> ResultRow {
    let mut row = ResultRow {
        subject: subject.to_string(),
        request: String::new(),
        status: FAILED.to_string(),
        certificate: String::new(),
        detail: String::new(),
    };
    let view = match known {
        Some(id) => match custos.get_request(&system(), org, id).await {
            Ok(v) if ResultRow::is_done(v.status.as_str()) => Ok(v),
            _ => custos.erase_subject(&system(), org, subject).await,
        },
        None => custos.erase_subject(&system(), org, subject).await,
    };
    let view = match view {
        Ok(view) => view,
        Err(e) => {
            row.detail = e.to_string();
            return row;
        }
    };
    row.request = view.id.clone();
    if let Err(e) = require_finished(&view) {
        row.detail = e.to_string();
        return row;
    }
    let path = job.certificates.join(format!("{}.json", view.id));
    if let Err(e) = save_certificate(custos, org, &view.id, &path).await {
        row.detail = e.to_string();
        return row;
    }
    row.status = view.status.as_str().to_string();
    row.certificate = path.display().to_string();
    row.detail = view.status_reason.unwrap_or_default();
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_sit_beside_the_csv() {
        let job = BulkJob::new(Path::new("in/subjects.csv"), None, None);
        assert_eq!(job.results, Path::new("in/subjects.csv.results.csv"));
        assert_eq!(job.certificates, Path::new("in/subjects.csv.certificates"));
        let job = BulkJob::new(Path::new("in/subjects.csv"), Some("out/r.csv".into()), None);
        assert_eq!(job.certificates, Path::new("out/subjects.csv.certificates"));
        let job = BulkJob::new(Path::new("s.csv"), None, Some("certs".into()));
        assert_eq!(job.certificates, Path::new("certs"));
    }

    /// The ids of rows to erase.
    fn erased(input: &str) -> Vec<String> {
        read_subjects(input.as_bytes())
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == RowKind::Erase)
            .map(|r| r.subject)
            .collect()
    }

    fn row(line: u64, subject: &str, kind: RowKind) -> InputRow {
        InputRow {
            line,
            subject: subject.into(),
            kind,
        }
    }

    #[test]
    fn ids_are_exact_whitespace_is_refused_and_duplicates_name_their_first_line() {
        let input = "subject\nalice\n\n\"bob, jr\"\n  carol \nalice\ncarol\n\"carol \"\n";
        assert_eq!(
            read_subjects(input.as_bytes()).unwrap(),
            [
                row(2, "alice", RowKind::Erase),
                row(4, "bob, jr", RowKind::Erase),
                row(5, "  carol ", RowKind::Whitespace),
                row(6, "alice", RowKind::DuplicateOf(2)),
                row(7, "carol", RowKind::Erase),
                row(8, "carol ", RowKind::Whitespace),
            ]
        );
    }

    #[test]
    fn subjects_skip_the_header_and_blanks() {
        assert_eq!(erased("subject\nalice\n\nbob\n"), ["alice", "bob"]);
        assert_eq!(erased("alice\r\nbob"), ["alice", "bob"]);
        // Spreadsheets start their CSV with a byte order mark.
        assert_eq!(erased("\u{feff}subject\r\nalice\r\n"), ["alice"]);
        // `subject` is a header only on the first row.
        assert_eq!(erased("alice\nsubject\n"), ["alice", "subject"]);
    }

    #[test]
    fn two_columns_are_bad_input_naming_the_line() {
        let err = read_subjects("alice\nbob,carol\n".as_bytes()).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("one column"), "{err}");
    }

    #[test]
    fn results_say_which_subjects_are_done() {
        let text = "subject,request,status,certificate,detail\n\
                    alice,r1,completed,c/r1.json,\n\
                    bob,r2,partially_completed,c/r2.json,hold h1\n\
                    carol,r3,failed,,disk full\n\
                    dave,,failed,,bad subject\n\
                    erin,r5,compl";
        let (done, failed) = read_results(text.as_bytes()).unwrap();
        let mut done: Vec<_> = done.into_iter().collect();
        done.sort();
        assert_eq!(done, ["alice", "bob"]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed["carol"], "r3");
    }

    #[test]
    fn a_foreign_file_is_not_taken_for_results() {
        let err = read_results("name,email\nx,y\n".as_bytes()).unwrap_err();
        assert!(err.contains("not a results file"), "{err}");
        assert!(read_results("".as_bytes()).unwrap().0.is_empty());
    }

    #[test]
    fn appending_ends_a_row_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(
            &path,
            "subject,request,status,certificate,detail\nalice,r1,compl",
        )
        .unwrap();
        let mut results = Results::open(&path).unwrap();
        let row = |s: &str| ResultRow {
            subject: s.into(),
            request: "r".into(),
            status: "completed".into(),
            certificate: "c".into(),
            detail: String::new(),
        };
        results.append(&row("bob")).unwrap();
        drop(results);
        let (done, _) = read_results(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(done.into_iter().collect::<Vec<_>>(), ["bob"]);
        // A fresh file gets the header first.
        let fresh = dir.path().join("fresh.csv");
        Results::open(&fresh)
            .unwrap()
            .append(&row("carol"))
            .unwrap();
        let text = std::fs::read_to_string(&fresh).unwrap();
        assert_eq!(
            text,
            "subject,request,status,certificate,detail\ncarol,r,completed,c,\n"
        );
    }

    proptest! {
        /// Whatever the subject ids (commas, quotes, line breaks inside), a CSV written by a
        /// standard writer reads back as the same ids in order, each erased once. (A leading byte
        /// order mark is the file's, not the id's: spreadsheets write one.)
        #[test]
        fn subjects_round_trip_through_csv(
            ids in proptest::collection::vec("[^\\s\u{0}\u{feff}]([^\u{0}]{0,20}[^\\s\u{0}])?", 0..20),
            header in any::<bool>(),
        ) {
            let mut w = csv::Writer::from_writer(Vec::new());
            if header {
                w.write_record(["subject"]).unwrap();
            }
            for id in &ids {
                w.write_record([id]).unwrap();
            }
            let bytes = w.into_inner().unwrap();
            let mut expected = Vec::new();
            let mut seen = HashSet::new();
            for (i, id) in ids.iter().enumerate() {
                let is_header = !header && i == 0 && id.eq_ignore_ascii_case("subject");
                if !is_header && seen.insert(id.clone()) {
                    expected.push(id.clone());
                }
            }
            let got: Vec<String> = read_subjects(bytes.as_slice())
                .unwrap()
                .into_iter()
                .filter(|r| r.kind == RowKind::Erase)
                .map(|r| r.subject)
                .collect();
            prop_assert_eq!(got, expected);
        }
    }
}
