//! Query parameters shared by the list endpoints (`GET /upload-tokens`, `GET /videos`):
//! `sortBy`, `sortOrder`, `currentPage`, `pageSize`.

use reqwest::Url;

use super::models::SortOrder;

/// Appends the sorting and paging parameters that are set; leaves the server's defaults otherwise.
pub(crate) fn append_paging(
    url: &mut Url,
    sort_by: Option<&str>,
    sort_order: Option<SortOrder>,
    current_page: Option<u32>,
    page_size: Option<u32>,
) {
    {
        let mut pairs = url.query_pairs_mut();
        if let Some(s) = sort_by {
            pairs.append_pair("sortBy", s);
        }
        if let Some(o) = sort_order {
            pairs.append_pair(
                "sortOrder",
                match o {
                    SortOrder::Asc => "asc",
                    SortOrder::Desc => "desc",
                },
            );
        }
        if let Some(p) = current_page {
            pairs.append_pair("currentPage", &p.to_string());
        }
        if let Some(s) = page_size {
            pairs.append_pair("pageSize", &s.to_string());
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_parameters_are_sent() {
        let mut url = Url::parse("http://127.0.0.1/videos").unwrap();
        append_paging(&mut url, None, None, None, None);
        assert_eq!(url.as_str(), "http://127.0.0.1/videos");
        append_paging(
            &mut url,
            Some("title"),
            Some(SortOrder::Desc),
            Some(2),
            Some(100),
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1/videos?sortBy=title&sortOrder=desc&currentPage=2&pageSize=100"
        );
    }
}
