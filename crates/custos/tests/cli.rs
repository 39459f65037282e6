//! The `custos` binary as a user runs it: exit codes, messages and files.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

mod support;

fn custos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custos"))
}

fn run_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = custos()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn policy_check_reports_file_line_col_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[categories.messages]\nretention = \"365d\"\nretension = \"1d\"\narchive_after = \"400d\"\n",
    )
    .unwrap();
    let out = custos()
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let name = bad.display().to_string();
    assert!(
        stderr.contains(&format!("{name}:3:1: unknown key `retension`")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{name}:4:")), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[categories.notes]\nretention = \"30d\"\n").unwrap();
    let out = custos()
        .args(["policy", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = custos()
        .args(["policy", "check"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("missing.toml"));
}

#[test]
fn policy_check_without_a_file_checks_the_policy_in_effect() {
    let dir = tempfile::tempdir().unwrap();
    let out = custos()
        .current_dir(dir.path())
        .args(["policy", "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("built-in policy: ok"), "{stdout}");
    // With a ./custos.toml, that file is the one checked.
    std::fs::write(
        dir.path().join("custos.toml"),
        "[categories.x]\nretention = \"2q\"\n",
    )
    .unwrap();
    let out = custos()
        .current_dir(dir.path())
        .args(["policy", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("custos.toml:2:"));
}

#[test]
fn policy_show_prints_the_effective_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = custos()
        .current_dir(dir.path())
        .args(["policy", "show"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("built-in default"), "{text}");
    assert!(text.contains("[categories.messages]") && text.contains("retention = \"365d\""));
}

#[test]
fn scan_jsonl_reports_character_offsets_and_names_bad_lines() {
    let input = "{\"id\": 1, \"text\": \"é mail a.b@example.com\"}\n{\"id\": \"x\", \"text\": \"nothing here\"}\n";
    let (code, out, err) = run_with_stdin(&["scan", "--jsonl"], input);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    let f = &lines[0]["findings"][0];
    assert_eq!(f["entity"], "EMAIL_ADDRESS");
    assert_eq!(
        (f["start"].as_u64(), f["end"].as_u64()),
        (Some(7), Some(22))
    );
    assert_eq!(lines[1], serde_json::json!({"id": "x", "findings": []}));

    let (code, _, err) = run_with_stdin(
        &["scan", "--jsonl"],
        "{\"id\": 1, \"text\": \"ok\"}\nnot json\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("<stdin>:2:"), "{err}");
}

#[test]
fn redact_applies_the_policy_rule() {
    let text = "Call +1 415 555 0134 or write to jo@example.com.";
    let (code, out, err) = run_with_stdin(&["redact", "--category", "messages"], text);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("jo@example.com") && !out.contains("555 0134"),
        "{out}"
    );
    assert!(out.contains("[EMAIL_ADDRESS_REDACTED]"), "{out}");
    let (code, _, err) = run_with_stdin(&["redact", "--category", "nope"], text);
    assert_eq!(code, 2);
    assert!(err.contains("--category nope"), "{err}");
}

#[test]
fn keys_rotate_rewraps_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = custos()
        .arg("--data")
        .arg(&data)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("rotated root key to version 2"));
    let out = custos()
        .arg("--data")
        .arg(&data)
        .args(["keys", "rotate", "--org", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("keys/root.keyring"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn serve_initializes_once_and_reuses_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut tokens = Vec::new();
    for start in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = custos()
            .arg("--data")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("CUSTOS_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = String::new();
        while !printed.contains("admin token:") {
            printed.push_str(&lines.next().expect("serve printed its banner").unwrap());
            printed.push('\n');
        }
        assert!(
            printed.contains(&format!("http://127.0.0.1:{port}")),
            "{printed}"
        );
        assert!(printed.contains("admin-token"), "{printed}");
        assert_eq!(printed.contains("Initialized"), start == 0, "{printed}");
        let token_path = data.join("admin-token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        tokens.push(std::fs::read_to_string(&token_path).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(tokens[0], tokens[1]);
}

#[test]
fn deployments_sharing_a_postgres_key_store_sign_with_one_key() {
    let Some(db) = support::PgDb::create("keys") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let key_of = |data: &str, root: Option<&str>| {
        let mut cmd = custos();
        cmd.arg("--data")
            .arg(dir.path().join(data))
            .args(["--keys", &db.url, "audit", "key"])
            .env_remove("CUSTOS_ROOT_KEY");
        if let Some(root) = root {
            cmd.env("CUSTOS_ROOT_KEY", root);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, first, err) = key_of("one", Some(root));
    assert_eq!(code, Some(0), "{err}");
    let (code, second, err) = key_of("two", Some(root));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(first, second, "two instances, two verifier keys");
    assert!(!dir.path().join("one/keys").exists(), "no local key files");
    // Without the shared root, refused as bad input naming what to set.
    let (code, _, err) = key_of("three", None);
    assert_eq!(code, Some(2));
    assert!(err.contains("CUSTOS_ROOT_KEY"), "{err}");
    assert!(
        !err.contains(&db.url),
        "the URL (and a password in it) is not echoed: {err}"
    );
    // Keys in the data's own database: refused.
    let out = custos()
        .arg("--data")
        .arg(dir.path().join("four"))
        .args(["--database", &db.url, "--keys", &db.url, "audit", "key"])
        .env("CUSTOS_ROOT_KEY", root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never holds data"));
}

#[test]
fn region_stores_are_checked_and_may_not_share_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("custos.toml");
    let data = dir.path().join("data");
    // The eu-central region names the main database: residency would be text only.
    std::fs::write(
        &policy,
        format!(
            "[service]\nname = \"Acme\"\nregions = [\"us-east\", \"eu-central\"]\n\
             default_region = \"us-east\"\n[categories.notes]\nretention = \"30d\"\n\
             [regions.eu-central]\ndatabase = \"sqlite:{}\"\nobjects = \"file:{}\"\n",
            data.join("custos.db").display(),
            dir.path().join("eu").display()
        ),
    )
    .unwrap();
    let out = custos()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning: region `us-east` has no stores while eu-central has its own"),
        "{err}"
    );
    let out = custos()
        .arg("--config")
        .arg(&policy)
        .arg("--data")
        .arg(&data)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[regions.eu-central] database is the same as --database's"),
        "{err}"
    );
}
