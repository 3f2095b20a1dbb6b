//! Query parameters shared by list routes and the `pagination` object with its `links` array.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, json_response};

/// `currentPage` (≥ 1, default 1) and `pageSize` (1–100, default 25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub current: u64,
    pub size: u64,
}

/// The value of query parameter `name` (last one wins).
pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `sortOrder`: `asc` (default) or `desc`; true for descending.
pub fn descending(query: &[(String, String)]) -> Result<bool, ApiError> {
    match param(query, "sortOrder") {
        None | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(_) => Err(ApiError::invalid_query(
            "sortOrder",
            "\"sortOrder\" must be one of: asc, desc.",
        )),
    }
}

fn number(query: &[(String, String)], name: &'static str, default: u64) -> Result<u64, ApiError> {
    match param(query, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::invalid_query(name, format!("\"{name}\" must be an integer."))),
    }
}

impl Page {
    pub fn from_query(query: &[(String, String)]) -> Result<Page, ApiError> {
        let current = number(query, "currentPage", 1)?;
        if current < 1 {
            return Err(ApiError::invalid_query(
                "currentPage",
                "\"currentPage\" must be at least 1.",
            ));
        }
        let size = number(query, "pageSize", 25)?;
        if !(1..=100).contains(&size) {
            return Err(ApiError::invalid_query(
                "pageSize",
                "\"pageSize\" must be between 1 and 100.",
            ));
        }
        Ok(Page { current, size })
    }

    /// The items of this page.
    pub fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        let start =
            usize::try_from((self.current - 1).saturating_mul(self.size)).unwrap_or(usize::MAX);
        let size = usize::try_from(self.size).unwrap_or(100);
        items.iter().skip(start).take(size).cloned().collect()
    }

    /// The 200 answer of list route `route`: `{"data": [this page], "pagination": …}`, from `all`
    /// (every match, sorted ascending; reversed first when `desc`) and the request's `query`.
    pub fn answer<T: Clone>(
        &self,
        route: &str,
        mut all: Vec<T>,
        desc: bool,
        to_json: impl Fn(&T) -> Value,
        query: &[(String, String)],
    ) -> ApiResult {
        if desc {
            all.reverse();
        }
        let data: Vec<Value> = self.slice(&all).iter().map(to_json).collect();
        let pagination = self.pagination(route, all.len() as u64, data.len(), query);
        Ok(json_response(
            StatusCode::OK,
            &json!({"data": data, "pagination": pagination}),
        ))
    }

    /// `{currentPage, currentPageItems, pageSize, pagesTotal, itemsTotal, links: [{rel, uri}]}`;
    /// `extra` are the other query parameters to keep in the links (e.g. `sortBy`).
    pub fn pagination(
        &self,
        route: &str,
        items_total: u64,
        page_items: usize,
        extra: &[(String, String)],
    ) -> Value {
        let pages_total = items_total.div_ceil(self.size).max(1);
        let extra: String = extra
            .iter()
            .filter(|(k, _)| k != "currentPage" && k != "pageSize")
            .map(|(k, v)| format!("&{}={}", enc(k), enc(v)))
            .collect();
        let link = |rel: &str, page: u64| json!({"rel": rel, "uri": format!("{route}?currentPage={page}&pageSize={}{extra}", self.size)});
        let mut links = vec![link("self", self.current), link("first", 1)];
        if self.current > 1 {
            links.push(link("previous", (self.current - 1).min(pages_total)));
        }
        if self.current < pages_total {
            links.push(link("next", self.current + 1));
        }
        links.push(link("last", pages_total));
        json!({
            "currentPage": self.current,
            "currentPageItems": page_items,
            "pageSize": self.size,
            "pagesTotal": pages_total,
            "itemsTotal": items_total,
            "links": links,
        })
    }
}

/// Minimal percent-encoding for link query values.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~[]".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn page_bounds() {
        assert_eq!(
            Page::from_query(&[]).unwrap(),
            Page {
                current: 1,
                size: 25
            }
        );
        assert!(Page::from_query(&q(&[("pageSize", "0")])).is_err());
        assert!(Page::from_query(&q(&[("pageSize", "101")])).is_err());
        assert!(Page::from_query(&q(&[("currentPage", "0")])).is_err());
        assert!(Page::from_query(&q(&[("currentPage", "x")])).is_err());
    }

    #[test]
    fn links() {
        let p = Page {
            current: 2,
            size: 2,
        };
        let v = p.pagination("/upload-tokens", 5, 2, &q(&[("sortBy", "ttl")]));
        assert_eq!(v["pagesTotal"], 3);
        let rels: Vec<&str> = v["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        assert_eq!(rels, ["self", "first", "previous", "next", "last"]);
        assert_eq!(
            v["links"][0]["uri"],
            "/upload-tokens?currentPage=2&pageSize=2&sortBy=ttl"
        );
        assert_eq!(p.slice(&[1, 2, 3, 4, 5]), vec![3, 4]);
    }
}
