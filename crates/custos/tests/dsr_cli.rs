//! `custos dsr ...` end to end with the real binary on a real data directory (filled through
//! the core library, then driven by the binary): erase one subject and verify its certificate
//! offline, bulk erasure from a CSV that resumes after its results file is cut short, exports
//! that parse, and list / show / extend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use custos_core::{
    Caller, Custos, NewHold, NewMember, NewOrg, NewRecord, NewRequest, Principal, SystemClock,
};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, RequestKind, SqliteStore};
use serde_json::{json, Value};

/// A temp dir with `data/` laid out as `custos` lays it out.
struct Data {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    org: String,
    /// Record ids per subject.
    records: BTreeMap<String, Vec<String>>,
    /// The id of an open access request (for extend).
    access_request: String,
}

const SUBJECTS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
/// A subject under a legal hold: its erasure completes partially.
const HELD: &str = "held-harry";

impl Data {
    /// An org with two messages and one interaction for each subject (and [`HELD`], under a
    /// subject hold), and an open access request of `alice`.
    async fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let custos = Self::custos(&dir);
        let admin = Caller::new(Principal::Admin);
        let system = Caller::new(Principal::System);
        let org = custos
            .create_org(
                &admin,
                NewOrg {
                    name: "acme".into(),
                    region: None,
                    owner: None,
                },
            )
            .await
            .unwrap()
            .org
            .id;
        let mut records = BTreeMap::new();
        for subject in SUBJECTS.iter().chain([&HELD]) {
            let new = |category: &str, text: String| NewRecord {
                category: category.into(),
                subject: Some(subject.to_string()),
                content: json!({ "text": text }),
                metadata: None,
            };
            let batch = vec![
                new("messages", format!("hello from {subject}")),
                new("messages", format!("{subject} again")),
                new("interactions", format!("{subject} asked a question")),
            ];
            let ids = custos
                .create_records(&system, &org, batch)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            records.insert(subject.to_string(), ids);
        }
        let owner = custos
            .add_member(
                &admin,
                &org,
                NewMember {
                    name: "counsel".into(),
                    roles: vec!["owner".into()],
                    groups: vec![],
                    mfa: false,
                    identity: None,
                },
            )
            .await
            .unwrap();
        let owner = Caller::new(custos.authenticate(&owner.api_key).await.unwrap());
        custos
            .create_hold(
                &owner,
                &org,
                NewHold {
                    reason: "litigation".into(),
                    subject: Some(HELD.into()),
                    category: Some("messages".into()),
                },
            )
            .await
            .unwrap();
        let access_request = custos
            .create_request(
                &system,
                &org,
                NewRequest {
                    kind: RequestKind::Access,
                    subject: "alice".into(),
                },
            )
            .await
            .unwrap()
            .id;
        Data {
            tmp,
            dir,
            org,
            records,
            access_request,
        }
    }

    fn custos(dir: &Path) -> Custos {
        std::fs::create_dir_all(dir).unwrap();
        let store = Arc::new(SqliteStore::open(&dir.join("custos.db")).unwrap());
        let objects = Objects::open(&ObjectLocation::File(dir.join("objects"))).unwrap();
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let kms = LocalKms::open_or_create(&keys.join("root.keyring")).unwrap();
        let key_store = SqliteKeyStore::open(&keys.join("keys.db")).unwrap();
        let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(key_store)));
        Custos::new(
            Arc::new(Policy::builtin()),
            store,
            objects,
            vault,
            Arc::new(SystemClock),
        )
    }

    /// A path in the temp dir (the binary's working directory).
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .arg("--data")
            .arg(&self.dir)
            .args(args)
            .current_dir(self.tmp.path())
            .env_remove("CUSTOS_DATABASE")
            .env_remove("CUSTOS_OBJECTS")
            .env_remove("CUSTOS_KEYS")
            .env_remove("CUSTOS_ROOT_KEY")
            .env("CUSTOS_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs `args`, requires exit `code`, returns stdout and stderr.
    fn expect(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "custos {args:?}:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0).0
    }

    /// `dsr list --json` of the org with extra args, parsed.
    fn list(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["dsr", "list", "--org", &self.org, "--json"];
        args.extend_from_slice(extra);
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn verifier_key(&self) -> String {
        self.ok(&["audit", "key"]).trim().to_string()
    }
}

/// The rows of a results file; flexible, since a row cut short by a kill stays in it.
fn rows(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["subject", "request", "status", "certificate", "detail"]
    );
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn erasing_one_subject_writes_a_certificate_that_verifies() {
    let d = Data::new().await;
    let out = d.ok(&["dsr", "erase", "--org", &d.org, "--subject", "alice"]);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("certificate-") && first.ends_with(".json"),
        "{out}"
    );
    assert!(out.contains("Certificate of deletion"), "{out}");
    assert!(
        !out.contains("alice"),
        "the subject id is not printed: {out}"
    );
    let cert = d.path(first);
    assert!(cert.is_file());
    let key = d.verifier_key();
    let verified = d.ok(&[
        "cert",
        "verify",
        cert.to_str().unwrap(),
        "--key",
        &key,
        "--org",
        &d.org,
        "--subject",
        "alice",
    ]);
    assert!(verified.contains("subject matches"), "{verified}");
    // With the issuing deployment's --data, its own key is the one trusted: no --key needed.
    let own = d.ok(&["cert", "verify", cert.to_str().unwrap()]);
    assert!(own.contains("signed by this deployment's own key"), "{own}");
    // The request is done and its certificate is listed.
    let erasures = d.list(&["--type", "erasure"]);
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["status"], "completed");
    let id = erasures[0]["id"].as_str().unwrap();
    assert!(first.contains(id), "{first}");
    assert_eq!(erasures[0]["certificates"].as_array().unwrap().len(), 1);

    // --out names the file; a held subject completes partially and says what is kept.
    let out = d.ok(&[
        "dsr",
        "erase",
        "--org",
        &d.org,
        "--subject",
        HELD,
        "--out",
        "held.json",
    ]);
    assert!(out.starts_with("held.json\n"), "{out}");
    assert!(out.contains("partially completed: "), "{out}");
    assert!(out.contains("litigation"), "{out}");
    d.ok(&["cert", "verify", "held.json", "--key", &key]);
}

#[tokio::test]
async fn bulk_erasure_resumes_and_erases_each_subject_once() {
    let d = Data::new().await;
    let csv = d.path("subjects.csv");
    std::fs::write(
        &csv,
        format!("subject\n{}\n\nalice\n", SUBJECTS.join("\r\n")),
    )
    .unwrap();
    let out = d.ok(&["dsr", "erase", "--org", &d.org, "--csv", "subjects.csv"]);
    assert!(out.contains("5 subject(s): 5 completed"), "{out}");
    assert!(out.contains("1 duplicate(s)"), "{out}");
    let results = d.path("subjects.csv.results.csv");
    let mut first = rows(&results);
    assert_eq!(first.len(), 6);
    // `alice` again on line 8: reported as a duplicate of its first line, not erased twice.
    let dup = first.pop().unwrap();
    assert_eq!(dup[..3], ["alice", "", "duplicate"], "{dup:?}");
    assert_eq!(dup[4], "line 8: duplicate of line 2");
    for (row, subject) in first.iter().zip(SUBJECTS) {
        assert_eq!(row[0], subject);
        assert_eq!(row[2], "completed");
        let cert = d.path(&row[3]);
        assert_eq!(
            cert,
            d.path(&format!("subjects.csv.certificates/{}.json", row[1]))
        );
        assert!(cert.is_file(), "{}", cert.display());
    }
    let key = d.verifier_key();
    d.ok(&["cert", "verify", &first[4][3], "--key", &key]);

    // As if killed after two subjects: the results file keeps its header and two rows (the
    // third cut mid-row), and the certificate files of the rest are gone; their erasures
    // had finished in the store.
    let text = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        &results,
        format!(
            "{}\n{}\n{}\n{}",
            lines[0],
            lines[1],
            lines[2],
            &lines[3][..12]
        ),
    )
    .unwrap();
    for row in &first[2..] {
        std::fs::remove_file(d.path(&row[3])).unwrap();
    }
    let out = d.ok(&["dsr", "erase", "--org", &d.org, "--csv", "subjects.csv"]);
    assert!(out.contains("2 done in an earlier run"), "{out}");
    let second = rows(&results);
    let whole: Vec<&Vec<String>> = second
        .iter()
        .filter(|r| r.len() == 5 && r[2] != "duplicate")
        .collect();
    assert_eq!(whole.len(), 5, "{second:?}");
    assert_eq!(
        whole.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        SUBJECTS
    );
    // The same requests as the first run, with their certificates written again.
    assert_eq!(
        whole.iter().map(|r| &r[1]).collect::<Vec<_>>(),
        first.iter().map(|r| &r[1]).collect::<Vec<_>>()
    );
    for row in &whole {
        assert_eq!(row[2], "completed");
        d.ok(&["cert", "verify", &row[3], "--key", &key]);
    }
    // Each subject has exactly one erasure request.
    let erasures = d.list(&["--type", "erasure"]);
    assert_eq!(erasures.len(), 5, "{erasures:?}");
    let refs: std::collections::BTreeSet<&str> = erasures
        .iter()
        .map(|e| e["subject_ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs.len(), 5);

    // A third run has nothing left to do and files nothing.
    let out = d.ok(&["dsr", "erase", "--org", &d.org, "--csv", "subjects.csv"]);
    assert!(out.contains("5 done in an earlier run"), "{out}");
    assert_eq!(d.list(&["--type", "erasure"]).len(), 5);

    // Ids are taken exactly as given: one with surrounding whitespace is refused on its row,
    // naming the line, and nothing is filed for it (trimming would erase `alice` instead).
    std::fs::write(d.path("spaced.csv"), "subject\n alice \n").unwrap();
    let (out, err) = d.expect(&["dsr", "erase", "--org", &d.org, "--csv", "spaced.csv"], 1);
    assert!(out.contains("1 failed"), "{out}\n{err}");
    let spaced = rows(&d.path("spaced.csv.results.csv"));
    assert_eq!(spaced.len(), 1);
    assert_eq!(spaced[0][..4], [" alice ", "", "failed", ""], "{spaced:?}");
    assert!(
        spaced[0][4].starts_with("line 2: ") && spaced[0][4].contains("whitespace"),
        "{spaced:?}"
    );
    assert_eq!(d.list(&["--type", "erasure"]).len(), 5);

    // Bad input: two columns, a foreign results file.
    std::fs::write(d.path("bad.csv"), "alice,bob\n").unwrap();
    let (_, err) = d.expect(&["dsr", "erase", "--org", &d.org, "--csv", "bad.csv"], 2);
    assert!(err.contains("line 1"), "{err}");
    std::fs::write(d.path("other.csv"), "name,email\n").unwrap();
    let (_, err) = d.expect(
        &[
            "dsr",
            "erase",
            "--org",
            &d.org,
            "--csv",
            "subjects.csv",
            "--results",
            "other.csv",
        ],
        2,
    );
    assert!(err.contains("not a results file"), "{err}");
}

#[tokio::test]
async fn exports_are_private_files_that_parse() {
    let d = Data::new().await;
    let out = d.ok(&[
        "dsr",
        "export",
        "--org",
        &d.org,
        "--subject",
        "bob",
        "--format",
        "json",
        "--out",
        "bob.json",
    ]);
    assert_eq!(out, "bob.json\nwrote 3 record(s) as json\n");
    let path = d.path("bob.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let ids: Vec<&str> = doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = d.records["bob"].iter().map(String::as_str).collect();
    expected.sort();
    let mut got = ids.clone();
    got.sort();
    assert_eq!(got, expected);
    assert!(doc.to_string().contains("hello from bob"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    d.ok(&[
        "dsr",
        "export",
        "--org",
        &d.org,
        "--subject",
        "bob",
        "--format",
        "csv",
        "--out",
        "bob.zip",
    ]);
    assert!(d.path("bob.zip").metadata().unwrap().len() > 0);
    // Bad input leaves nothing behind.
    let (_, err) = d.expect(
        &[
            "dsr",
            "export",
            "--org",
            &d.org,
            "--subject",
            "bob",
            "--format",
            "xml",
            "--out",
            "bob.xml",
        ],
        2,
    );
    assert!(err.contains("--format xml"), "{err}");
    assert!(!d.path("bob.xml").exists());
    let names: Vec<String> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".custos-")),
        "no temporary file is left: {names:?}"
    );
}

#[tokio::test]
async fn requests_are_listed_by_due_time_shown_and_extended() {
    let d = Data::new().await;
    d.ok(&["dsr", "erase", "--org", &d.org, "--subject", "carol"]);
    let all = d.list(&[]);
    assert_eq!(all.len(), 2);
    let due: Vec<&str> = all.iter().map(|r| r["due_at"].as_str().unwrap()).collect();
    let mut sorted = due.clone();
    sorted.sort_by_key(|t| t.parse::<jiff::Timestamp>().unwrap());
    assert_eq!(due, sorted, "sorted by due time");
    let open = d.list(&["--status", "received"]);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], d.access_request.as_str());
    assert!(d.list(&["--overdue"]).is_empty());

    let table = d.ok(&["dsr", "list", "--org", &d.org]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID"), "{table}");
    assert!(table.contains(&d.access_request), "{table}");
    assert!(
        table.contains("access") && table.contains("erasure"),
        "{table}"
    );
    assert!(
        !table.contains("alice"),
        "no subject ids in the table: {table}"
    );

    let before = d.ok(&["dsr", "show", "--org", &d.org, &d.access_request, "--json"]);
    let before: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(before["status"], "received");
    let out = d.ok(&[
        "dsr",
        "extend",
        "--org",
        &d.org,
        &d.access_request,
        "--by",
        "1mo",
        "--reason",
        "many systems to search",
    ]);
    assert!(
        out.starts_with(&format!("extended request {}", d.access_request)),
        "{out}"
    );
    let shown = d.ok(&["dsr", "show", "--org", &d.org, &d.access_request]);
    assert!(shown.contains("many systems to search"), "{shown}");
    let after: Value =
        serde_json::from_str(&d.ok(&["dsr", "show", "--org", &d.org, &d.access_request, "--json"]))
            .unwrap();
    let t = |v: &Value| {
        v["due_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert!(t(&after) > t(&before));

    // A second extension is refused (exit 1); beyond the maximum and unknown ids are bad
    // input (exit 2); so are unknown types.
    let (_, err) = d.expect(
        &[
            "dsr",
            "extend",
            "--org",
            &d.org,
            &d.access_request,
            "--by",
            "1d",
            "--reason",
            "again",
        ],
        1,
    );
    assert!(err.contains("already extended"), "{err}");
    d.expect(&["dsr", "show", "--org", &d.org, "no-such-request"], 2);
    let (_, err) = d.expect(&["dsr", "list", "--org", &d.org, "--type", "delete"], 2);
    assert!(err.contains("access, portability or erasure"), "{err}");
}
