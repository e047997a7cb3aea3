//! Tests of the configuration schema and its validation.
use super::*;

const GOOD: &str = r#"
data_dir = "/var/lib/ironsan"
portals  = ["127.0.0.1:3260", "[::1]:3260"]
[[target]]
iqn  = "iqn.2026-11.org.example:vm1"
[[target.lun]]
id   = 0
file = "/srv/lun0.img"
size = "10G"
[[target.acl]]
initiator     = "iqn.1993-08.org.debian:01:host1"
chap_user     = "host1"
chap_secret   = "at-least-12-chars"
mutual_user   = "target1"
mutual_secret = "another-12-chars"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

fn problem(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn documented_example_parses() {
    let cfg = parse(GOOD).expect("valid");
    assert_eq!(cfg.targets[0].auth, AuthMode::Chap);
    assert_eq!(cfg.targets[0].luns[0].size.as_deref(), Some("10G"));
    assert_eq!(cfg.portal_addrs().len(), 2);
    assert_eq!(cfg.discovery.auth, DiscoveryAuth::Acl);
}

#[test]
fn errors_name_file_key_and_problem() {
    let e = problem(&GOOD.replace("at-least-12-chars", "short"));
    assert!(
        e.contains("test.toml") && e.contains("target[0].acl[0].chap_secret") && e.contains("12"),
        "{e}"
    );
    let e = problem(&GOOD.replace("\"10G\"", "\"10X\""));
    assert!(
        e.contains("target[0].lun[0].size") && e.contains("unknown unit"),
        "{e}"
    );
    let e = problem(&GOOD.replace("iqn.2026-11.org.example:vm1", "vm1"));
    assert!(e.contains("target[0].iqn"), "{e}");
    let e = problem(&GOOD.replace("127.0.0.1:3260\",", "127.0.0.1\","));
    assert!(e.contains("portals[0]"), "{e}");
    let e = problem(&GOOD.replace("another-12-chars", "at-least-12-chars"));
    assert!(e.contains("mutual_secret"), "{e}");
}

#[test]
fn unknown_keys_are_refused() {
    let e = problem(&GOOD.replace("size = \"10G\"", "size = \"10G\"\nsise = 1"));
    assert!(e.contains("sise"), "{e}");
}

#[test]
fn chap_target_refuses_iqn_only_acl() {
    let text = GOOD
        .replace("chap_user     = \"host1\"\n", "")
        .replace("chap_secret   = \"at-least-12-chars\"\n", "")
        .replace("mutual_user   = \"target1\"\n", "")
        .replace("mutual_secret = \"another-12-chars\"\n", "");
    let e = problem(&text);
    assert!(e.contains("chap_user"), "{e}");
    let open = text.replace(
        "iqn  = \"iqn.2026-11.org.example:vm1\"",
        "iqn = \"iqn.2026-11.org.example:vm1\"\nauth = \"none\"",
    );
    parse(&open).expect("auth none allows name-only ACLs");
}

#[test]
fn duplicate_lun_ids_are_refused() {
    let text = format!("{GOOD}\n[[target.lun]]\nid = 0\nfile = \"/srv/x.img\"\n");
    assert!(problem(&text).contains("defined twice"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size("10G"), Ok(10 << 30));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("1t"), Ok(1 << 40));
    assert!(parse_size("10X").is_err());
    assert!(parse_size("G").is_err());
    assert!(parse_size("99999999999P").is_err());
}

#[test]
fn iscsi_names() {
    assert!(check_iscsi_name("iqn.2026-11.org.example:vm1").is_ok());
    assert!(check_iscsi_name("iqn.1993-08.org.debian:01:abcdef").is_ok());
    assert!(check_iscsi_name("eui.02004567A425678D").is_ok());
    assert!(check_iscsi_name("naa.52004567BA64678D").is_ok());
    assert!(check_iscsi_name("iqn.2026-13.org.example").is_err());
    assert!(check_iscsi_name("iqn.2026-11.org.exa mple").is_err());
    assert!(check_iscsi_name("eui.123").is_err());
    assert!(check_iscsi_name("host1").is_err());
}

#[test]
fn api_section() {
    let cfg = parse(&format!("{GOOD}\n[api]\nlisten = \"127.0.0.1:9260\"\n")).expect("valid");
    assert_eq!(cfg.api.listen.as_deref(), Some("127.0.0.1:9260"));
    let text = toml::to_string(&cfg).expect("serializes");
    assert_eq!(parse(&text).expect("reparses"), cfg);
    let e = problem(&format!("{GOOD}\n[api]\nlisten = \"localhost\"\n"));
    assert!(e.contains("api.listen"), "{e}");
    let e = problem(&format!("{GOOD}\n[api]\nlisen = \"127.0.0.1:1\"\n"));
    assert!(e.contains("lisen"), "{e}");
    assert!(!toml::to_string(&parse(GOOD).expect("valid"))
        .expect("ser")
        .contains("[api]"));
}

#[test]
fn round_trips_through_toml() {
    let cfg = parse(GOOD).expect("valid");
    let text = toml::to_string(&cfg).expect("serializes");
    assert_eq!(parse(&text).expect("reparses"), cfg);
}
