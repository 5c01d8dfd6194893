//! Config errors are decided once: what `run` refuses, `config check` refuses with the
//! same file, line, key and message, and both exit 2.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("timeout").args(["-k", "5", "30", BIN]).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn run_and_config_check_refuse_the_same_config_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // The API on every address with no token: nobody would need to log in.
        (
            "wild.toml",
            "[site]\nextensions = [\"8000-8999\"]\n\n[api]\n# everyone\nlisten = \"0.0.0.0:0\"\n",
            ":6: api.listen: refusing to serve the API on 0.0.0.0:0 with no [[api.token]]",
        ),
        // A TOML syntax error: the key and line it is in.
        ("syntax.toml", "[api]\nlisten = \"127.0.0.1:0\n", ":2: api.listen: "),
        // A HEP sender block that is not one.
        ("hep.toml", "[capture]\nhep_allow = [\"10.0.0.0/99\"]\n", ":2: capture.hep_allow[0]: "),
    ];
    for (name, text, want) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let f = f.to_str().unwrap();
        let (check_code, check_err) = stderr_of(&["config", "check", f]);
        let (run_code, run_err) = stderr_of(&["run", "--config", f]);
        assert_eq!((check_code, run_code), (Some(2), Some(2)), "{name}:\n{check_err}\n{run_err}");
        let line = check_err.lines().find(|l| l.contains(want)).unwrap_or_else(|| panic!("{name}: {check_err}"));
        assert!(line.starts_with(&format!("{f}:")), "{line}");
        assert!(run_err.contains(line), "{name}: run says\n{run_err}\nconfig check says\n{line}");
    }
}
