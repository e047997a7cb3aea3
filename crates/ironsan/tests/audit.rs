//! `ironsan audit --json`: the access matrix of a configuration file, checked
//! against the file it came from — who reaches which LUN, and how.

use std::process::Command;

const CONFIG: &str = r#"
data_dir = "/tmp/ironsan-audit-test"
portals = ["127.0.0.1:3260"]

[[target]]
iqn = "iqn.2026-11.org.example:web"
digests = "required"
[[target.lun]]
id = 0
file = "/srv/web0.img"
[[target.lun]]
id = 1
file = "/srv/web1.img"
[[target.acl]]
initiator = "iqn.2026-11.org.example:host-a"
chap_user = "host-a"
chap_secret = "secret-of-host-a"
luns = [1]
[[target.acl]]
initiator = "iqn.2026-11.org.example:host-b"
chap_user = "host-b"
chap_secret = "secret-of-host-b"
mutual_user = "web"
mutual_secret = "secret-of-target"

[[target]]
iqn = "iqn.2026-11.org.example:lab"
auth = "none"
[[target.lun]]
id = 3
file = "/srv/lab3.img"
[[target.acl]]
initiator = "*"
"#;

#[test]
fn access_matrix_matches_the_config() {
    let dir = std::env::temp_dir().join(format!("ironsan-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ironsan.toml");
    std::fs::write(&file, CONFIG).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_ironsan"))
        .arg("audit")
        .arg("--config")
        .arg(&file)
        .arg("--json")
        .output()
        .expect("run ironsan audit");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("secret-of"), "secrets never appear: {text}");
    let rows: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let rows = rows.as_array().expect("an array");
    let row = |target: &str, initiator: &str| {
        rows.iter()
            .find(|r| r["target"] == target && r["initiator"] == initiator)
            .unwrap_or_else(|| panic!("no row for {target} / {initiator}: {text}"))
    };
    assert_eq!(rows.len(), 3, "one row per ACL entry: {text}");
    let a = row(
        "iqn.2026-11.org.example:web",
        "iqn.2026-11.org.example:host-a",
    );
    assert_eq!(
        (a["auth"].as_str(), a["chap_user"].as_str()),
        (Some("chap"), Some("host-a"))
    );
    assert_eq!(a["luns"], serde_json::json!([1]), "LUN masking: {a}");
    assert_eq!(a["digests_required"], true);
    let b = row(
        "iqn.2026-11.org.example:web",
        "iqn.2026-11.org.example:host-b",
    );
    assert_eq!(b["auth"], "mutual-chap");
    assert_eq!(b["luns"], serde_json::json!([0, 1]));
    let lab = row("iqn.2026-11.org.example:lab", "*");
    assert_eq!(
        (lab["auth"].as_str(), lab["luns"].clone()),
        (Some("none"), serde_json::json!([3]))
    );
    // host-a cannot reach host-b's LUN 0: the matrix shows it.
    assert!(!a["luns"]
        .as_array()
        .is_some_and(|l| l.contains(&serde_json::json!(0))));
}
