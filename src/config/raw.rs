//! The configuration file exactly as written: serde types with every unknown key rejected and
//! spans kept on the values that are validated after parsing (see `validate.rs`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub journal: RawJournal,
    #[serde(default)]
    pub upload: RawUpload,
    #[serde(default)]
    pub watch: Vec<RawWatch>,
    pub metrics: Option<RawMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub endpoint: Option<Spanned<String>>,
    pub upload_token: Option<Spanned<String>>,
    pub upload_token_file: Option<Spanned<String>>,
    pub api_key_file: Option<Spanned<String>>,
    pub allow_insecure_http: Option<bool>,
    pub ca_file: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub min_rate: Option<Spanned<SizeValue>>,
    pub request_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub path: Option<Spanned<String>>,
    pub keep_done: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    pub workers: Option<Spanned<i64>>,
    pub chunk_size: Option<Spanned<SizeValue>>,
    pub max_rate: Option<Spanned<SizeValue>>,
    pub after_upload: Option<Spanned<String>>,
    pub move_to: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
    pub shutdown_timeout: Option<Spanned<String>>,
    pub title_template: Option<Spanned<String>>,
    pub hash: Option<Spanned<String>>,
    pub lanes_per_file: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub path: Spanned<String>,
    pub recursive: Option<bool>,
    pub include: Option<Spanned<Vec<Spanned<String>>>>,
    pub exclude: Option<Spanned<Vec<Spanned<String>>>>,
    pub settle: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub poll_interval: Option<Spanned<String>>,
    pub rescan_interval: Option<Spanned<String>>,
    pub follow_symlinks: Option<bool>,
    pub follow_symlinks_outside: Option<bool>,
    pub check_container: Option<bool>,
    pub incomplete_after: Option<Spanned<String>>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Spanned<String>,
}

/// A size or rate as written: `"64 MiB"` or an integer number of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeValue {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64 MiB\" or an integer number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                i64::try_from(v)
                    .map(SizeValue::Int)
                    .map_err(|_| E::custom("the number is too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
