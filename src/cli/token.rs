//! `ingestd token create|list|show|delete`: manage delegated upload tokens with the API key.
//!
//! The API key comes from env `APIVIDEO_API_KEY`, else from `api.api_key_file`. The config file is
//! read only if it exists (an invalid one exits 78); without one, `--endpoint` and the env variable
//! are enough. Output is a table by default, the API's JSON with `--json`; `create` with its
//! output redirected prints the token alone (`ingestd token create > FILE` writes a token file).
//! The API key is never printed; a rejected key is one line on stderr and exit 1.

use crate::cli::stdout::{out, outln};
use std::process::ExitCode;

use anyhow::Context;

use super::keyed::{self, KeySource, api_failure, not_found};
use super::{Cli, TokenCommand, table};
use crate::api::{ApiError, Page, SortOrder, TokenListQuery, TokenSortBy, UploadToken};

pub async fn run(cli: &Cli, cmd: &TokenCommand) -> anyhow::Result<ExitCode> {
    let common = match cmd {
        TokenCommand::Create { common, .. }
        | TokenCommand::List { common, .. }
        | TokenCommand::Show { common, .. }
        | TokenCommand::Delete { common, .. } => common,
    };
    let keyed::Keyed {
        client,
        source: key_source,
    } = keyed::connect(&cli.config, common.endpoint.as_deref())?;
    let rejected = |e: ApiError| api_failure(e, &key_source);
    match cmd {
        TokenCommand::Create { ttl, json, .. } => {
            let token = client.create_upload_token(*ttl).await.map_err(rejected)?;
            if !*json && !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Redirected (`… > /etc/ingestd/upload-token`): the token alone, so the file
                // holds exactly what `upload_token_file` expects.
                outln!("{}", token.token)?;
            } else {
                print_tokens(std::slice::from_ref(&token), *json, &token)?;
            }
        }
        TokenCommand::List {
            sort_by,
            sort_order,
            page,
            page_size,
            json,
            ..
        } => {
            let query = TokenListQuery {
                sort_by: sort_by.map(|s| match s {
                    super::SortBy::CreatedAt => TokenSortBy::CreatedAt,
                    super::SortBy::Ttl => TokenSortBy::Ttl,
                }),
                sort_order: sort_order.map(|o| match o {
                    super::SortOrder::Asc => SortOrder::Asc,
                    super::SortOrder::Desc => SortOrder::Desc,
                }),
                current_page: *page,
                page_size: *page_size,
            };
            let page = client.list_upload_tokens(&query).await.map_err(rejected)?;
            if *json {
                outln!("{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                out!("{}", list_table(&page))?;
            }
        }
        TokenCommand::Show { id, json, .. } => {
            let token = client
                .get_upload_token(id)
                .await
                .map_err(|e| lookup_failure(e, id, &key_source))?;
            print_tokens(std::slice::from_ref(&token), *json, &token)?;
        }
        TokenCommand::Delete { id, .. } => {
            client
                .delete_upload_token(id)
                .await
                .map_err(|e| lookup_failure(e, id, &key_source))?;
            outln!("deleted upload token {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A 404 on show/delete names the token that was not found.
fn lookup_failure(e: ApiError, id: &str, source: &KeySource) -> anyhow::Error {
    not_found(
        e,
        source,
        format!("no upload token {id}"),
        "deleted, expired or never created; `ingestd token list` shows the live ones",
    )
}

fn print_tokens(tokens: &[UploadToken], json: bool, one: &UploadToken) -> anyhow::Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(one).context("cannot format the token as JSON")?
        )?;
    } else {
        out!("{}", table::render(&rows(tokens)))?;
    }
    Ok(())
}

fn ttl_text(ttl: u64) -> String {
    if ttl == 0 {
        "never".to_owned()
    } else {
        humantime::format_duration(std::time::Duration::from_secs(ttl)).to_string()
    }
}

/// `TOKEN  TTL  CREATED  EXPIRES`, header first.
fn rows(tokens: &[UploadToken]) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "TOKEN".into(),
        "TTL".into(),
        "CREATED".into(),
        "EXPIRES".into(),
    ]];
    for t in tokens {
        rows.push(vec![
            t.token.clone(),
            ttl_text(t.ttl),
            t.created_at.clone().unwrap_or_else(|| "-".into()),
            t.expires_at.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    rows
}

/// The table and `page 1 of 3, 57 tokens`.
fn list_table(page: &Page<UploadToken>) -> String {
    table::page(
        &rows(&page.data),
        &page.pagination,
        "upload tokens",
        "token",
        "tokens",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Pagination;

    fn token(t: &str, ttl: u64, expires: Option<&str>) -> UploadToken {
        UploadToken {
            token: t.into(),
            ttl,
            created_at: Some("2020-12-02T10:13:19+00:00".into()),
            expires_at: expires.map(Into::into),
        }
    }

    #[test]
    fn table_and_footer() {
        let page = Page {
            data: vec![
                token(
                    "to1tcmSFHeYY5KzyhOqVKMKb",
                    3600,
                    Some("2020-12-02T11:13:19+00:00"),
                ),
                token("to1W3ZS9PdUBZWzzTEZr1B79", 0, None),
            ],
            pagination: Pagination {
                current_page: 1,
                current_page_items: 2,
                page_size: 2,
                pages_total: 29,
                items_total: 57,
                links: vec![],
            },
        };
        let text = list_table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "TOKEN                     TTL    CREATED                    EXPIRES",
                "to1tcmSFHeYY5KzyhOqVKMKb  1h     2020-12-02T10:13:19+00:00  2020-12-02T11:13:19+00:00",
                "to1W3ZS9PdUBZWzzTEZr1B79  never  2020-12-02T10:13:19+00:00  never",
                "page 1 of 29, 57 tokens",
            ]
        );
        let empty = Page {
            data: vec![],
            pagination: Pagination::default(),
        };
        assert_eq!(list_table(&empty), "no upload tokens\n");
        let past_the_end = Page {
            data: vec![],
            pagination: Pagination {
                current_page: 9,
                current_page_items: 0,
                page_size: 2,
                pages_total: 3,
                items_total: 5,
                links: vec![],
            },
        };
        assert_eq!(
            list_table(&past_the_end),
            "no upload tokens on page 9: there are 3 pages of 2 (5 tokens); try --page 3\n"
        );
    }
}
