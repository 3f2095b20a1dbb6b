//! Every configuration key, per section, with what it holds and an example. Used to suggest the key
//! that was meant (`did you mean …`), to say which type a key wants, and by the test that checks
//! `config.example.toml` documents every key.

/// A key: its name, what it holds (for "expected …") and a line to write.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub expects: &'static str,
    pub example: &'static str,
}

const fn k(name: &'static str, expects: &'static str, example: &'static str) -> Key {
    Key {
        name,
        expects,
        example,
    }
}

const PATH: &str = "an absolute path (a string)";
const DURATION: &str = "a duration (a string with a unit)";
const SIZE: &str = "a size (a string with a unit, or an integer number of bytes)";
const BOOL: &str = "true or false";

/// Top-level sections.
pub const SECTIONS: &[Key] = &[
    k("api", "a table", "[api]"),
    k("journal", "a table", "[journal]"),
    k("upload", "a table", "[upload]"),
    k("watch", "an array of tables", "[[watch]]"),
    k("metrics", "a table", "[metrics]"),
];

pub const API: &[Key] = &[
    k(
        "endpoint",
        "a URL (a string)",
        "endpoint = \"https://ws.api.video\"",
    ),
    k(
        "upload_token",
        "a string",
        "upload_token = \"to1tcmSFHeYY5KzyhOqVKMVb\"",
    ),
    k(
        "upload_token_file",
        PATH,
        "upload_token_file = \"/etc/ingestd/upload-token\"",
    ),
    k(
        "api_key_file",
        PATH,
        "api_key_file = \"/etc/ingestd/api-key\"",
    ),
    k("allow_insecure_http", BOOL, "allow_insecure_http = false"),
    k("ca_file", PATH, "ca_file = \"/etc/ingestd/proxy-ca.pem\""),
    k("connect_timeout", DURATION, "connect_timeout = \"10s\""),
    k("min_rate", SIZE, "min_rate = \"64 KiB\""),
    k("request_timeout", DURATION, "request_timeout = \"30s\""),
];

pub const JOURNAL: &[Key] = &[
    k("path", PATH, "path = \"/var/lib/ingestd/journal.sqlite\""),
    k("keep_done", DURATION, "keep_done = \"90d\""),
];

pub const UPLOAD: &[Key] = &[
    k("workers", "an integer", "workers = 2"),
    k("chunk_size", SIZE, "chunk_size = \"64 MiB\""),
    k("max_rate", SIZE, "max_rate = \"10 MiB\""),
    k(
        "after_upload",
        "\"keep\", \"delete\" or \"move\"",
        "after_upload = \"keep\"",
    ),
    k("move_to", PATH, "move_to = \"/srv/uploaded\""),
    k("retry_max", DURATION, "retry_max = \"10 min\""),
    k("shutdown_timeout", DURATION, "shutdown_timeout = \"30s\""),
    k("title_template", "a string", "title_template = \"{stem}\""),
    k("hash", "\"blake3\" or \"sha256\"", "hash = \"blake3\""),
    k("lanes_per_file", "an integer", "lanes_per_file = 1"),
    k("max_connections", "an integer", "max_connections = 8"),
];

pub const WATCH: &[Key] = &[
    k("path", PATH, "path = \"/srv/recordings\""),
    k("recursive", BOOL, "recursive = true"),
    k(
        "include",
        "an array of glob strings",
        "include = [\"*.mp4\", \"*.mov\"]",
    ),
    k(
        "exclude",
        "an array of glob strings",
        "exclude = [\".*\", \"*.part\"]",
    ),
    k("settle", DURATION, "settle = \"10s\""),
    k(
        "mode",
        "\"auto\", \"events\" or \"poll\"",
        "mode = \"auto\"",
    ),
    k("poll_interval", DURATION, "poll_interval = \"30s\""),
    k("rescan_interval", DURATION, "rescan_interval = \"10 min\""),
    k("follow_symlinks", BOOL, "follow_symlinks = false"),
    k(
        "follow_symlinks_outside",
        BOOL,
        "follow_symlinks_outside = false",
    ),
    k("check_container", BOOL, "check_container = true"),
    k("incomplete_after", DURATION, "incomplete_after = \"1h\""),
    k("tags", "an array of strings", "tags = [\"camera-1\"]"),
    k(
        "metadata",
        "a table of strings",
        "metadata = { site = \"studio-a\" }",
    ),
];

pub const METRICS: &[Key] = &[k(
    "listen",
    "an address:port (a string)",
    "listen = \"127.0.0.1:9184\"",
)];

/// The keys of section `name` (`""` = top level).
pub fn section(name: &str) -> Option<&'static [Key]> {
    Some(match name {
        "" => SECTIONS,
        "api" => API,
        "journal" => JOURNAL,
        "upload" => UPLOAD,
        "watch" => WATCH,
        "metrics" => METRICS,
        _ => return None,
    })
}

/// The section whose key names are exactly `names` (serde's "expected one of" list).
pub fn section_with_keys(names: &[&str]) -> Option<&'static str> {
    ["", "api", "journal", "upload", "watch", "metrics"]
        .into_iter()
        .find(|s| {
            section(s).is_some_and(|keys| keys.iter().map(|k| k.name).eq(names.iter().copied()))
        })
}

/// Up to three keys of `keys` close to `wrong`, best first.
pub fn suggestions(wrong: &str, keys: &[Key]) -> Vec<&'static str> {
    let wrong_l = wrong.to_ascii_lowercase();
    let mut scored: Vec<(f64, &'static str)> = keys
        .iter()
        .map(|k| {
            let mut score = strsim::jaro_winkler(&wrong_l, k.name);
            let squashed = k.name.replace('_', "");
            if squashed == wrong_l.replace(['_', '-'], "") {
                score = 1.0;
            }
            (score, k.name)
        })
        .filter(|(s, _)| *s >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Looks up key `name` in section `section`.
pub fn find(section_name: &str, name: &str) -> Option<Key> {
    section(section_name)?
        .iter()
        .copied()
        .find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys() {
        assert_eq!(suggestions("chunksize", UPLOAD), vec!["chunk_size"]);
        assert_eq!(suggestions("worker", UPLOAD)[0], "workers");
        assert_eq!(
            suggestions("upload-token-file", API)[0],
            "upload_token_file"
        );
        assert!(suggestions("zzzz", UPLOAD).is_empty());
    }

    #[test]
    fn finds_section_by_key_list() {
        assert_eq!(section_with_keys(&["path", "keep_done"]), Some("journal"));
        let upload: Vec<&str> = UPLOAD.iter().map(|k| k.name).collect();
        assert_eq!(section_with_keys(&upload), Some("upload"));
    }
}

#[cfg(test)]
mod serde_agreement {
    use super::*;
    use crate::config::RawConfig;

    /// The tables above must list exactly the fields serde accepts, in declaration order.
    #[test]
    fn key_tables_match_the_raw_types() {
        for (name, header) in [
            ("", ""),
            ("api", "[api]\n"),
            ("journal", "[journal]\n"),
            ("upload", "[upload]\n"),
            ("watch", "[[watch]]\npath = \"/a\"\n"),
            ("metrics", "[metrics]\nlisten = \"127.0.0.1:1\"\n"),
        ] {
            let text = format!("{header}zzz_unknown = 1\n");
            let err = toml::from_str::<RawConfig>(&text).unwrap_err();
            let names: Vec<&str> = section(name).unwrap().iter().map(|k| k.name).collect();
            let listed: Vec<&str> = err
                .message()
                .split_once("expected")
                .unwrap()
                .1
                .split('`')
                .skip(1)
                .step_by(2)
                .collect();
            assert_eq!(listed, names, "section `{name}`: {}", err.message());
        }
    }
}
